//! The node configuration form (`pubsub#node_config`), field for field as
//! Prosody 13 sends it (labels, options, the `max_items` range), and its
//! parsing into node configuration keys (Prosody's field names).

use std::collections::BTreeMap;

use xmpp_core::stanza::Element;
use xmpp_core::value::{Table, Value};

use super::node::Node;

const NS_DATA: &str = "jabber:x:data";
const NS_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";
pub const NS_NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";

/// One field: `var`, Prosody's config key, type, label, options
/// (label, value), and whether the form shows the default when unset.
struct Field {
    var: &'static str,
    name: &'static str,
    type_: &'static str,
    label: Option<&'static str>,
    options: &'static [(&'static str, &'static str)],
    shows_default: bool,
}

const fn f(
    var: &'static str,
    name: &'static str,
    type_: &'static str,
    label: Option<&'static str>,
    options: &'static [(&'static str, &'static str)],
    shows_default: bool,
) -> Field {
    Field {
        var,
        name,
        type_,
        label,
        options,
        shows_default,
    }
}

const FIELDS: &[Field] = &[
    f(
        "pubsub#title",
        "title",
        "text-single",
        Some("Title"),
        &[],
        false,
    ),
    f(
        "pubsub#description",
        "description",
        "text-single",
        Some("Description"),
        &[],
        false,
    ),
    f(
        "pubsub#type",
        "payload_type",
        "text-single",
        Some("The type of node data, usually specified by the namespace of the payload (if any)"),
        &[],
        false,
    ),
    f(
        "pubsub#max_items",
        "max_items",
        "text-single",
        Some("Max # of items to persist"),
        &[],
        true,
    ),
    f(
        "pubsub#persist_items",
        "persist_items",
        "boolean",
        Some("Persist items to storage"),
        &[],
        true,
    ),
    f(
        "pubsub#access_model",
        "access_model",
        "list-single",
        Some("Specify the subscriber model"),
        &[
            ("authorize", "authorize"),
            ("open", "open"),
            ("presence", "presence"),
            ("roster", "roster"),
            ("whitelist", "whitelist"),
        ],
        true,
    ),
    f(
        "pubsub#roster_groups_allowed",
        "roster_groups_allowed",
        "list-multi",
        Some("Roster groups allowed to subscribe"),
        &[],
        false,
    ),
    f(
        "pubsub#publish_model",
        "publish_model",
        "list-single",
        Some("Specify the publisher model"),
        &[
            ("publishers", "publishers"),
            ("subscribers", "subscribers"),
            ("open", "open"),
        ],
        true,
    ),
    f(
        "pubsub#send_last_published_item",
        "send_last_published_item",
        "list-single",
        None,
        &[
            ("never", "never"),
            ("on_sub", "on_sub"),
            ("on_sub_and_presence", "on_sub_and_presence"),
        ],
        true,
    ),
    f(
        "pubsub#deliver_notifications",
        "notify_items",
        "boolean",
        Some("Whether to deliver event notifications"),
        &[],
        true,
    ),
    f(
        "pubsub#deliver_payloads",
        "include_payload",
        "boolean",
        Some("Whether to deliver payloads with event notifications"),
        &[],
        true,
    ),
    f(
        "pubsub#notification_type",
        "notification_type",
        "list-single",
        Some("Specify the delivery style for notifications"),
        &[
            ("Messages of type normal", "normal"),
            ("Messages of type headline", "headline"),
        ],
        true,
    ),
    f(
        "pubsub#notify_delete",
        "notify_delete",
        "boolean",
        Some("Whether to notify subscribers when the node is deleted"),
        &[],
        true,
    ),
    f(
        "pubsub#notify_retract",
        "notify_retract",
        "boolean",
        Some("Whether to notify subscribers when items are removed from the node"),
        &[],
        true,
    ),
    f(
        "pubsub#itemreply",
        "itemreply",
        "list-single",
        Some("Specify whose JID to include as the publisher of items"),
        &[
            ("Include the node owner's JID", "owner"),
            ("Include the item publisher's JID", "publisher"),
            ("Don't include any JID with items", "none"),
        ],
        true,
    ),
];

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Table(_) => None,
    }
}

/// The form of `node`'s configuration (`max_max`: `pep_max_items`).
pub fn form(node: &Node, max_max: i64) -> Element {
    let mut x = Element::new("x", NS_DATA).attr("type", "form").child(
        Element::new("field", NS_DATA)
            .attr("var", "FORM_TYPE")
            .attr("type", "hidden")
            .child(Element::new("value", NS_DATA).text(NS_NODE_CONFIG)),
    );
    for field in FIELDS {
        let mut el = Element::new("field", NS_DATA)
            .attr("var", field.var)
            .attr("type", field.type_)
            .attr_opt("label", field.label);
        if field.name == "max_items" {
            el.push_child(
                Element::new("validate", NS_VALIDATE)
                    .attr("datatype", "pubsub:integer-or-max")
                    .child(
                        Element::new("range", NS_VALIDATE)
                            .attr("min", "1")
                            .attr("max", max_max.to_string()),
                    ),
            );
        }
        for (label, value) in field.options {
            el.push_child(
                Element::new("option", NS_DATA)
                    .attr("label", *label)
                    .child(Element::new("value", NS_DATA).text(*value)),
            );
        }
        let value = match node.config.get(field.name) {
            Some(v) => value_text(v),
            None if field.shows_default => value_text(&node.get(field.name)),
            None => None,
        };
        if let Some(t) = value {
            el.push_child(Element::new("value", NS_DATA).text(t));
        }
        x.push_child(el);
    }
    x
}

/// A `jabber:x:data` form's values by `var`.
pub fn values(x: &Element) -> BTreeMap<String, Vec<String>> {
    x.children()
        .filter(|f| f.is("field", NS_DATA))
        .filter_map(|f| {
            let var = f.get_attr("var")?.to_string();
            let values = f
                .children()
                .filter(|v| v.is("value", NS_DATA))
                .map(Element::text_content)
                .collect();
            Some((var, values))
        })
        .collect()
}

/// A submitted form as Prosody's `node_config_form:data()`: the fields
/// present, typed (`Err`: the text of a bad field).
pub fn parse(x: &Element) -> Result<Table, String> {
    let values = values(x);
    let mut config = Table::new();
    for field in FIELDS {
        let Some(v) = values.get(field.var) else {
            continue;
        };
        if field.type_ == "list-multi" {
            continue; // roster groups: not supported by mod_pep's access models
        }
        let Some(text) = v.first().cloned() else {
            continue; // an empty field leaves the value unset
        };
        let value = match field.type_ {
            "boolean" => match text.as_str() {
                "1" | "true" => Value::Bool(true),
                "0" | "false" => Value::Bool(false),
                _ => return Err(format!("{}: not a boolean", field.var)),
            },
            _ if field.name == "max_items" => match text.as_str() {
                "max" => Value::str("max"),
                t => match t.parse::<i64>() {
                    Ok(n) if n >= 1 => Value::Integer(n),
                    _ => return Err(format!("{}: not an integer or 'max'", field.var)),
                },
            },
            _ => Value::str(text),
        };
        config.insert(field.name, value);
    }
    Ok(config)
}
