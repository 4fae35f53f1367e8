//! The little of Prosody's `util.dataforms` that ad-hoc commands need: a form
//! layout rendered as a `jabber:x:data` form and read back from a submitted
//! one (`form:form(values)` and `form:data(x)`).

use std::collections::BTreeMap;

use crate::Jid;
use crate::stanza::Element;

pub const NS_DATA: &str = "jabber:x:data";

/// One field of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// `hidden`, `text-single`, `list-single`, `list-multi`, `jid-single`,
    /// `boolean`, `fixed`, ...
    pub type_: String,
    pub label: Option<String>,
    pub required: bool,
    /// A fixed value (a hidden `FORM_TYPE`, usually).
    pub value: Option<String>,
    /// The choices of a list field.
    pub options: Vec<String>,
}

impl Field {
    pub fn new(name: &str, type_: &str) -> Field {
        Field {
            name: name.to_string(),
            type_: type_.to_string(),
            label: None,
            required: false,
            value: None,
            options: Vec::new(),
        }
    }
    pub fn label(mut self, label: &str) -> Field {
        self.label = Some(label.to_string());
        self
    }
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub fn value(mut self, value: &str) -> Field {
        self.value = Some(value.to_string());
        self
    }
    pub fn options(mut self, options: &[&str]) -> Field {
        self.options = options.iter().map(|o| o.to_string()).collect();
        self
    }
}

/// A submitted value, as `form:data()` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    List(Vec<String>),
}

impl FieldValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) => Some(s),
            FieldValue::List(_) => None,
        }
    }
    pub fn as_list(&self) -> &[String] {
        match self {
            FieldValue::List(v) => v,
            FieldValue::Text(_) => &[],
        }
    }
}

/// A form layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub title: Option<String>,
    pub instructions: Option<String>,
    pub fields: Vec<Field>,
}

/// The values of a submitted form, and the problems by field (in layout order).
pub type FormData = (BTreeMap<String, FieldValue>, Vec<(String, String)>);

impl Form {
    /// The form to fill in, with `values` (by field name) as initial data; a
    /// list field's values are offered as its options.
    pub fn form(&self, values: &BTreeMap<String, Vec<String>>, type_: &str) -> Element {
        let mut x = Element::new("x", NS_DATA).attr("type", type_);
        if let Some(t) = &self.title {
            x.push_child(Element::new("title", NS_DATA).text(t.clone()));
        }
        if let Some(i) = &self.instructions {
            x.push_child(Element::new("instructions", NS_DATA).text(i.clone()));
        }
        for f in &self.fields {
            let mut field = Element::new("field", NS_DATA)
                .attr("var", f.name.as_str())
                .attr("type", f.type_.as_str())
                .attr_opt("label", f.label.clone());
            if f.required {
                field.push_child(Element::new("required", NS_DATA));
            }
            let given = values.get(&f.name);
            let is_list = f.type_.starts_with("list-");
            let mut options: Vec<&String> = f.options.iter().collect();
            if is_list && let Some(v) = given {
                options.extend(v.iter());
            }
            for o in options {
                field.push_child(
                    Element::new("option", NS_DATA)
                        .attr("label", o.as_str())
                        .child(Element::new("value", NS_DATA).text(o.clone())),
                );
            }
            let fixed = f.value.iter().cloned().collect::<Vec<_>>();
            let vals = match given {
                Some(v) if !is_list => v.clone(),
                _ => fixed,
            };
            for v in vals {
                field.push_child(Element::new("value", NS_DATA).text(v));
            }
            x.push_child(field);
        }
        x
    }

    /// Reads a submitted form (`form:data(x)`): each field of the layout,
    /// with "Required value missing" for a required field that is absent or
    /// empty and "Invalid JID: ..." for a JID field that does not parse.
    pub fn data(&self, x: Option<&Element>) -> FormData {
        let mut data = BTreeMap::new();
        let mut errors = Vec::new();
        for f in &self.fields {
            let tag = x.and_then(|x| {
                x.children()
                    .filter(|c| c.is("field", NS_DATA))
                    .find(|c| c.get_attr("var") == Some(f.name.as_str()))
            });
            let Some(tag) = tag else {
                if f.required {
                    errors.push((f.name.clone(), "Required value missing".to_string()));
                }
                continue;
            };
            let values: Vec<String> = tag
                .children()
                .filter(|c| c.is("value", NS_DATA))
                .map(Element::text_content)
                .collect();
            let (value, err) = read_field(f, values);
            if let Some(v) = value {
                data.insert(f.name.clone(), v);
            }
            if let Some(e) = err {
                errors.push((f.name.clone(), e));
            }
        }
        (data, errors)
    }
}

fn read_field(f: &Field, values: Vec<String>) -> (Option<FieldValue>, Option<String>) {
    let missing = || Some("Required value missing".to_string());
    match f.type_.as_str() {
        "list-multi" | "jid-multi" | "text-multi" => {
            let err = (f.required && values.is_empty()).then(missing).flatten();
            (Some(FieldValue::List(values)), err)
        }
        "jid-single" => {
            let Some(raw) = values.into_iter().next().filter(|v| !v.is_empty()) else {
                return (None, f.required.then(missing).flatten());
            };
            match Jid::parse(&raw) {
                Ok(j) => (Some(FieldValue::Text(j.to_string())), None),
                Err(_) => (None, Some(format!("Invalid JID: {raw}"))),
            }
        }
        _ => {
            let text = values.into_iter().next().unwrap_or_default();
            if text.is_empty() && f.required {
                return (None, missing());
            }
            (Some(FieldValue::Text(text)), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Form {
        Form {
            title: Some("T".into()),
            instructions: None,
            fields: vec![
                Field::new("FORM_TYPE", "hidden").value("urn:x"),
                Field::new("rooms", "list-multi").required(),
                Field::new("jid", "jid-single"),
            ],
        }
    }

    #[test]
    fn reads_values_and_errors() {
        let x = Element::new("x", NS_DATA)
            .child(
                Element::new("field", NS_DATA)
                    .attr("var", "rooms")
                    .child(Element::new("value", NS_DATA).text("a@b"))
                    .child(Element::new("value", NS_DATA).text("c@b")),
            )
            .child(
                Element::new("field", NS_DATA)
                    .attr("var", "jid")
                    .child(Element::new("value", NS_DATA).text("@bad")),
            );
        let (data, errors) = layout().data(Some(&x));
        assert_eq!(data["rooms"].as_list(), ["a@b", "c@b"]);
        assert_eq!(
            errors,
            [("jid".to_string(), "Invalid JID: @bad".to_string())]
        );
        let (_, errors) = layout().data(Some(&Element::new("x", NS_DATA)));
        assert_eq!(errors[0].1, "Required value missing");
    }

    #[test]
    fn renders_list_values_as_options() {
        let mut v = BTreeMap::new();
        v.insert("rooms".to_string(), vec!["a@b".to_string()]);
        let x = layout().form(&v, "form");
        let rooms = x
            .children()
            .find(|f| f.get_attr("var") == Some("rooms"))
            .expect("rooms");
        assert!(rooms.get_child("required", NS_DATA).is_some());
        assert_eq!(rooms.children().filter(|c| c.name() == "option").count(), 1);
        let ft = x.children().next().expect("title");
        assert_eq!(ft.name(), "title");
    }
}
