//! Each type of [`crate::types`] to and from its Jingle/Colibri2 element.
