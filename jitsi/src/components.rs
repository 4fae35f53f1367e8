//! The options of Jitsi's MUC components (`speakerstats_component`,
//! `room_metadata_component`, `filesharing_component`): a component host
//! with `muc_component` naming the conference MUC it acts on, and the
//! tenant rewriting of the addresses clients use. Room lookups, the web
//! session's room, json-messages and identities are in [`super::web_session`].

use std::sync::Arc;

use xmpp_core::Host;

use super::util::TenantMapping;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{module} on {host}: should be loaded as a component")]
    NotComponent { module: &'static str, host: String },
    #[error(transparent)]
    Option(#[from] xmpp_core::config::OptionError),
}

/// The options every such component reads.
pub struct ComponentConfig {
    /// `muc_component`: the conference MUC (`None`: the module logs an
    /// error and does nothing, as Jitsi's).
    pub muc_component: Option<String>,
    /// `muc_mapper_domain_base`: the main VirtualHost.
    pub domain_base: Option<String>,
    /// The tenant mapping, when `muc_mapper_domain_base` is set.
    pub mapping: Option<TenantMapping>,
}

impl ComponentConfig {
    pub fn read(module: &'static str, host: &Arc<Host>) -> Result<ComponentConfig, ComponentError> {
        if !host.is_component() {
            return Err(ComponentError::NotComponent {
                module,
                host: host.name.clone(),
            });
        }
        let muc_component = host.option_str("muc_component").map(str::to_string);
        if muc_component.is_none() {
            tracing::error!(host = %host.name, "{module}: no muc_component specified, no muc to operate on!");
        }
        Ok(ComponentConfig {
            muc_component,
            domain_base: host
                .option_str("muc_mapper_domain_base")
                .map(str::to_string),
            mapping: TenantMapping::from_host(host)?,
        })
    }

    /// `room_jid_match_rewrite`: a tenant's virtual room address to the
    /// real one; other addresses as they are.
    pub fn rewrite(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_real(jid))
            .unwrap_or_else(|| jid.to_string())
    }

    /// `internal_room_jid_match_rewrite`: a real room address to the one
    /// the tenant's clients know.
    pub fn internal_rewrite(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_virtual(jid))
            .unwrap_or_else(|| jid.to_string())
    }
}
