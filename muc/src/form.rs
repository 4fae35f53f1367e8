//! XEP-0004 data forms as Prosody's `util.dataforms`: a layout of fields
//! that renders a form (`form`, `result`, `submit`) and reads a submitted
//! one back, with Prosody's per-type readers, datatype validation and error
//! texts.

use std::collections::{BTreeMap, HashMap};

use xmpp_core::Jid;
use xmpp_core::stanza::Element;

use crate::util::NS_DATA;

pub const NS_XDATA_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";

/// A field's value, typed as the room code uses it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Text(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
}

impl FieldValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            FieldValue::List(l) => Some(l),
            _ => None,
        }
    }
    /// As a Lua-shaped value, for event payloads.
    pub fn to_value(&self) -> xmpp_core::Value {
        use xmpp_core::{Table, Value};
        match self {
            FieldValue::Text(s) => Value::String(s.clone()),
            FieldValue::Bool(b) => Value::Bool(*b),
            FieldValue::Int(i) => Value::Integer(*i),
            FieldValue::List(l) => Value::Table(Table {
                seq: l.iter().map(|s| Value::String(s.clone())).collect(),
                map: Default::default(),
            }),
        }
    }
}

/// One `<option/>` of a list field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormOption {
    pub label: Option<String>,
    pub value: String,
    /// Selected when the field has no value of its own.
    pub default: bool,
}

impl FormOption {
    /// An option labelled with its own value.
    pub fn plain(value: &str) -> FormOption {
        FormOption {
            label: Some(value.to_string()),
            value: value.to_string(),
            default: false,
        }
    }
}

/// A field of a layout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Field {
    /// The `var` (None for `fixed` fields).
    pub name: Option<String>,
    /// `text-single` when empty.
    pub type_: String,
    pub label: Option<String>,
    pub desc: Option<String>,
    pub datatype: Option<String>,
    pub range_min: Option<i64>,
    pub range_max: Option<i64>,
    pub value: Option<FieldValue>,
    pub options: Vec<FormOption>,
    pub required: bool,
}

impl Field {
    pub fn new(name: &str, type_: &str) -> Field {
        Field {
            name: Some(name.to_string()),
            type_: type_.to_string(),
            ..Field::default()
        }
    }
    /// A `fixed` field showing `text` (a section title).
    pub fn fixed(text: &str) -> Field {
        Field {
            type_: "fixed".into(),
            value: Some(FieldValue::Text(text.to_string())),
            ..Field::default()
        }
    }
    pub fn label(mut self, label: &str) -> Field {
        self.label = Some(label.to_string());
        self
    }
    pub fn desc(mut self, desc: &str) -> Field {
        self.desc = Some(desc.to_string());
        self
    }
    pub fn datatype(mut self, datatype: &str) -> Field {
        self.datatype = Some(datatype.to_string());
        self
    }
    pub fn value(mut self, value: Option<FieldValue>) -> Field {
        self.value = value;
        self
    }
    pub fn options(mut self, options: Vec<FormOption>) -> Field {
        self.options = options;
        self
    }
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }
    fn field_type(&self) -> &str {
        if self.type_.is_empty() {
            "text-single"
        } else {
            &self.type_
        }
    }
}

/// A form layout: title, instructions and fields in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form {
    pub title: Option<String>,
    pub instructions: Option<String>,
    pub fields: Vec<Field>,
}

/// What [`Form::read`] found in a submitted form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submitted {
    pub values: HashMap<String, FieldValue>,
    /// Field name → Prosody's error text.
    pub errors: BTreeMap<String, String>,
    /// Fields present in the submission, in layout order.
    pub present: Vec<String>,
}

impl Form {
    pub fn new(fields: Vec<Field>) -> Form {
        Form {
            fields,
            ..Form::default()
        }
    }

    /// A `<x xmlns='jabber:x:data'/>` of `form_type`, values from `data`
    /// (by field name) else the layout's own.
    pub fn render(&self, data: Option<&HashMap<String, FieldValue>>, form_type: &str) -> Element {
        let mut x = Element::new("x", NS_DATA).attr("type", form_type);
        if form_type == "cancel" {
            return x;
        }
        if form_type != "submit" {
            if let Some(t) = &self.title {
                x.push_child(Element::new("title", NS_DATA).text(t.clone()));
            }
            if let Some(i) = &self.instructions {
                x.push_child(Element::new("instructions", NS_DATA).text(i.clone()));
            }
        }
        for field in &self.fields {
            x.push_child(render_field(field, data, form_type));
        }
        x
    }

    /// Reads a submitted form against this layout (Prosody's `form:data`).
    pub fn read(&self, x: &Element) -> Submitted {
        let mut out = Submitted::default();
        for field in &self.fields {
            let Some(name) = &field.name else { continue };
            let tag = x
                .children()
                .find(|c| c.is("field", NS_DATA) && c.get_attr("var") == Some(name.as_str()));
            let Some(tag) = tag else {
                if field.required {
                    out.errors
                        .insert(name.clone(), "Required value missing".into());
                }
                continue;
            };
            out.present.push(name.clone());
            let (mut value, mut err) = read_field(field.field_type(), tag, field.required);
            if let (Some(v), Some(dt)) = (&value, &field.datatype) {
                match validate(dt, v, field) {
                    Ok(Some(nv)) => value = Some(nv),
                    Ok(None) => {}
                    Err(e) => {
                        value = None;
                        err = Some(e);
                    }
                }
            }
            if let Some(v) = value {
                out.values.insert(name.clone(), v);
            }
            if let Some(e) = err {
                out.errors.insert(name.clone(), e);
            }
        }
        out
    }
}

fn render_field(
    field: &Field,
    data: Option<&HashMap<String, FieldValue>>,
    form_type: &str,
) -> Element {
    let ft = field.field_type();
    let mut el = Element::new("field", NS_DATA)
        .attr("type", ft)
        .attr_opt("var", field.name.clone())
        .attr_opt(
            "label",
            field.label.clone().filter(|_| form_type != "submit"),
        );
    if form_type != "submit"
        && let Some(d) = &field.desc
    {
        el.push_child(Element::new("desc", NS_DATA).text(d.clone()));
    }
    if form_type == "form"
        && let Some(dt) = &field.datatype
    {
        let mut v = Element::new("validate", NS_XDATA_VALIDATE).attr("datatype", dt.clone());
        if field.range_min.is_some() || field.range_max.is_some() {
            v.push_child(
                Element::new("range", NS_XDATA_VALIDATE)
                    .attr_opt("min", field.range_min.map(|n| n.to_string()))
                    .attr_opt("max", field.range_max.map(|n| n.to_string())),
            );
        }
        el.push_child(v);
    }
    let mut value = field.value.clone();
    if let Some(v) = field
        .name
        .as_ref()
        .and_then(|n| data.and_then(|d| d.get(n)))
    {
        value = Some(v.clone());
    }
    if form_type == "form" && !field.options.is_empty() {
        let mut defaults = Vec::new();
        for o in &field.options {
            el.push_child(
                Element::new("option", NS_DATA)
                    .attr_opt("label", o.label.clone())
                    .child(Element::new("value", NS_DATA).text(o.value.clone())),
            );
            if o.default {
                defaults.push(o.value.clone());
            }
        }
        if value.is_none() {
            if ft == "list-single" {
                value = defaults.into_iter().next().map(FieldValue::Text);
            } else if ft == "list-multi" {
                value = Some(FieldValue::List(defaults));
            }
        }
    }
    let text_value = |s: String| Element::new("value", NS_DATA).text(s);
    match value {
        None => {}
        Some(FieldValue::Bool(b)) => el.push_child(text_value(if b { "1" } else { "0" }.into())),
        Some(FieldValue::Int(i)) => {
            let s = if ft == "boolean" {
                if i != 0 { "1" } else { "0" }.to_string()
            } else {
                i.to_string()
            };
            el.push_child(text_value(s));
        }
        Some(FieldValue::List(l)) => {
            for v in l {
                el.push_child(text_value(v));
            }
        }
        Some(FieldValue::Text(s)) => {
            if ft == "text-multi" {
                for line in s.split(['\r', '\n']).filter(|l| !l.is_empty()) {
                    el.push_child(text_value(line.to_string()));
                }
            } else if ft == "boolean" {
                let b = !(s.is_empty() || s == "0" || s == "false");
                el.push_child(text_value(if b { "1" } else { "0" }.into()));
            } else {
                el.push_child(text_value(s));
            }
        }
    }
    if form_type == "form" && field.required {
        el.push_child(Element::new("required", NS_DATA));
    }
    el
}

/// The text of the first `<value/>`, `None` without one.
fn first_value(tag: &Element) -> Option<String> {
    tag.get_child_text("value", NS_DATA)
}

fn all_values(tag: &Element) -> Vec<String> {
    tag.children()
        .filter(|c| c.is("value", NS_DATA))
        .map(Element::text_content)
        .collect()
}

const MISSING: &str = "Required value missing";

fn simple_text(tag: &Element, required: bool) -> (Option<FieldValue>, Option<String>) {
    let data = first_value(tag);
    if required && data.as_deref().is_none_or(str::is_empty) {
        return (None, Some(MISSING.into()));
    }
    (data.map(FieldValue::Text), None)
}

fn read_field(ft: &str, tag: &Element, required: bool) -> (Option<FieldValue>, Option<String>) {
    match ft {
        "text-single" | "text-private" | "list-single" => simple_text(tag, required),
        "hidden" => (first_value(tag).map(FieldValue::Text), None),
        "jid-single" => match simple_text(tag, required) {
            (Some(FieldValue::Text(raw)), _) => match Jid::parse(&raw) {
                Ok(j) => (Some(FieldValue::Text(j.to_string())), None),
                Err(_) => (None, Some(format!("Invalid JID: {raw}"))),
            },
            other => other,
        },
        "jid-multi" => {
            let mut ok = Vec::new();
            let mut errs = Vec::new();
            for raw in all_values(tag) {
                match Jid::parse(&raw) {
                    Ok(j) => ok.push(j.to_string()),
                    Err(_) => errs.push(format!("Invalid JID: {raw}")),
                }
            }
            if !ok.is_empty() {
                let err = (!errs.is_empty()).then(|| errs.join("\n"));
                (Some(FieldValue::List(ok)), err)
            } else if required || !errs.is_empty() {
                let err = if errs.is_empty() {
                    MISSING.to_string()
                } else {
                    errs.join("\n")
                };
                (None, Some(err))
            } else {
                (None, None)
            }
        }
        "list-multi" | "text-multi" => {
            let values = all_values(tag);
            if values.is_empty() {
                return (None, required.then(|| MISSING.to_string()));
            }
            if ft == "text-multi" {
                (Some(FieldValue::Text(values.join("\n"))), None)
            } else {
                (Some(FieldValue::List(values)), None)
            }
        }
        "boolean" => match simple_text(tag, required) {
            (Some(FieldValue::Text(raw)), _) => match raw.as_str() {
                "1" | "true" => (Some(FieldValue::Bool(true)), None),
                "0" | "false" => (Some(FieldValue::Bool(false)), None),
                _ => (None, Some(format!("Invalid boolean representation:{raw}"))),
            },
            other => other,
        },
        _ => (None, None),
    }
}

/// Datatype validation (`xs:integer`): `Ok(Some(new))` replaces the value.
fn validate(
    datatype: &str,
    value: &FieldValue,
    field: &Field,
) -> Result<Option<FieldValue>, String> {
    if datatype != "xs:integer" {
        return Ok(None);
    }
    let Some(text) = value.as_text() else {
        return Ok(None);
    };
    let n: f64 = match text.trim().parse() {
        Ok(n) => n,
        Err(_) => return Err("not a number".into()),
    };
    if !n.is_finite() {
        return Err("not a number".into());
    }
    if n.fract() != 0.0 {
        return Err("not an integer".into());
    }
    if field.range_max.is_some_and(|m| n > m as f64)
        || field.range_min.is_some_and(|m| n < m as f64)
    {
        return Err("out of bounds".into());
    }
    Ok(Some(FieldValue::Int(n as i64)))
}

/// The `FORM_TYPE` of a data form (Prosody's `dataforms.get_type`): `None`
/// when `x` is not a data form, `Some("")` when it has no FORM_TYPE.
pub fn form_type(x: &Element) -> Option<String> {
    if !x.is("x", NS_DATA) {
        return None;
    }
    for f in x.children().filter(|c| c.is("field", NS_DATA)) {
        if f.get_attr("var") == Some("FORM_TYPE") {
            return Some(first_value(f).unwrap_or_default());
        }
    }
    Some(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted(fields: &[(&str, &[&str])]) -> Element {
        let mut x = Element::new("x", NS_DATA).attr("type", "submit");
        for (var, values) in fields {
            let mut f = Element::new("field", NS_DATA).attr("var", *var);
            for v in *values {
                f.push_child(Element::new("value", NS_DATA).text(*v));
            }
            x.push_child(f);
        }
        x
    }

    fn layout() -> Form {
        Form::new(vec![
            Field::new("FORM_TYPE", "hidden").value(Some(FieldValue::Text("urn:x".into()))),
            Field::new("flag", "boolean"),
            Field::new("n", "text-single").datatype("xs:integer"),
            Field::new("roles", "list-multi"),
            Field::new("nick", "text-single").required(),
        ])
    }

    #[test]
    fn reads_typed_values_and_reports_errors_as_prosody() {
        let s = layout().read(&submitted(&[
            ("FORM_TYPE", &["urn:x"]),
            ("flag", &["true"]),
            ("n", &["42"]),
            ("roles", &["a", "b"]),
            ("nick", &["x"]),
        ]));
        assert!(s.errors.is_empty());
        assert_eq!(s.values["flag"], FieldValue::Bool(true));
        assert_eq!(s.values["n"], FieldValue::Int(42));
        assert_eq!(
            s.values["roles"],
            FieldValue::List(vec!["a".into(), "b".into()])
        );
        assert_eq!(s.present, ["FORM_TYPE", "flag", "n", "roles", "nick"]);

        let bad = layout().read(&submitted(&[("flag", &["maybe"]), ("n", &["1.5"])]));
        assert_eq!(bad.errors["flag"], "Invalid boolean representation:maybe");
        assert_eq!(bad.errors["n"], "not an integer");
        assert_eq!(bad.errors["nick"], "Required value missing");
        assert!(!bad.values.contains_key("flag"));
    }

    #[test]
    fn renders_options_defaults_and_validation() {
        let f = Form {
            title: Some("T".into()),
            instructions: None,
            fields: vec![
                Field::new("w", "list-single").options(vec![
                    FormOption {
                        label: Some("A".into()),
                        value: "a".into(),
                        default: false,
                    },
                    FormOption {
                        label: Some("B".into()),
                        value: "b".into(),
                        default: true,
                    },
                ]),
                Field::new("n", "text-single")
                    .datatype("xs:integer")
                    .value(Some(FieldValue::Int(20))),
            ],
        };
        let x = f.render(None, "form");
        assert_eq!(
            x.to_xml_in(NS_DATA),
            "<x type='form'><title>T</title><field type='list-single' var='w'>\
             <option label='A'><value>a</value></option><option label='B'><value>b</value></option>\
             <value>b</value></field><field type='text-single' var='n'>\
             <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:integer'/>\
             <value>20</value></field></x>"
        );
        assert_eq!(
            form_type(&submitted(&[("FORM_TYPE", &["urn:y"])])),
            Some("urn:y".into())
        );
    }
}
