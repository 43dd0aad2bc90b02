//! The published OpenAPI document: poem-openapi's, refined where its generator cannot say
//! what the server does or says it in a form client generators reject.
//!
//! Each refinement is one function, applied to the JSON once at start-up:
//! - [`unwrap_refs`]: poem-openapi wraps a `$ref` that carries a description or a default in
//!   `allOf: [{$ref}, {description}]`. Generators refuse `allOf` around an enum
//!   (openapi-python-client drops the whole schema, and with it `Run`) and turn one around an
//!   object into a new model whose made-up name collides with a real one (`Run.result` became a
//!   second `RunResult`). A property becomes a plain `$ref` (its description kept beside it,
//!   which OpenAPI 3.0 tools read as documentation); a query parameter gets the enum inline, so
//!   its default stays part of its schema.
//! - [`bound_unsigned`]: unsigned integers (`offset`, counts) say `minimum: 0`.
//! - [`error_bodies_per_status`]: each error status gets its own body schema, whose `code` is the
//!   enum of the [`ErrorCode`]s that status can carry, so a client can match on them.
//! - [`describe_responses`]: a success answer poem-openapi leaves undescribed takes the first
//!   sentence of its schema's description.
//! - [`close_request_objects`]: the objects a request body is made of say
//!   `additionalProperties: false`, as the server enforces (`deny_unknown_fields`): a field the
//!   operation does not know is a 400, never ignored.

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::request::ErrorCode;

/// The document served at `/api/openapi.json`, from poem-openapi's `spec()` text and what
/// this server's configuration decides (so the document is made at start-up, from it): the
/// plans for sale are `CheckoutRequest.plan`'s enum, the longest run `RunCreate.timeout`'s
/// maximum.
pub fn refine(generated: &str, config: &Config) -> String {
    let mut doc: Value = serde_json::from_str(generated).expect("poem-openapi writes JSON");
    let schemas = &mut doc["components"]["schemas"];
    let plan_ids: Vec<&str> = config.paid_plans.iter().map(|p| p.id.as_str()).collect();
    if !plan_ids.is_empty() {
        schemas["CheckoutRequest"]["properties"]["plan"]["enum"] = json!(plan_ids);
    }
    schemas["RunCreate"]["properties"]["timeout"]["maximum"] =
        json!(config.max_run_time.as_secs_f64());
    // A start value is a number, boolean or string, or for an array variable an array of
    // them, flat or nested as its shape (poem-openapi can only say "anything").
    // An element is a number, boolean or string, or a row of numbers (a matrix nested as its
    // shape); the server also takes deeper nesting and rows of other types, which client
    // generators cannot express as a union within a union.
    let element = json!({"oneOf": [
        {"type": "number"}, {"type": "boolean"}, {"type": "string"},
        {"type": "array", "items": {"type": "number"}}
    ]});
    schemas["RunCreate"]["properties"]["start_values"]["additionalProperties"] = json!({
        "oneOf": [
            {"type": "number"}, {"type": "boolean"}, {"type": "string"},
            {"type": "array", "items": element}
        ]
    });
    // A sweep's design values are start values too: the same shapes.
    let start_value =
        schemas["RunCreate"]["properties"]["start_values"]["additionalProperties"].clone();
    schemas["GridParameter"]["properties"]["values"]["items"] = start_value.clone();
    schemas["DesignCreate"]["properties"]["cases"]["items"]["additionalProperties"] = start_value;
    let schemas = doc["components"]["schemas"].clone();
    unwrap_refs(&mut doc, &schemas, false);
    bound_unsigned(&mut doc);
    error_bodies_per_status(&mut doc);
    describe_responses(&mut doc);
    event_streams(&mut doc);
    close_request_objects(&mut doc);
    link_operations(&mut doc);
    serde_json::to_string(&doc).expect("a Value serialises")
}

/// An event stream's schema, as OpenAPI 3.0 tools read it (schemathesis, and the
/// `itemSchema` of OpenAPI 3.2): one event, with its `event` name and its `data`, a JSON
/// document of the schema poem-openapi names as the stream's items.
fn event_streams(doc: &mut Value) {
    for (_, response) in responses_mut(doc) {
        let Some(media) = response
            .get_mut("content")
            .and_then(|c| c.get_mut("text/event-stream"))
        else {
            continue;
        };
        let Some(item) = media["schema"]["items"]["$ref"]
            .as_str()
            .map(str::to_string)
        else {
            continue;
        };
        let name = item.trim_start_matches("#/components/schemas/").to_string();
        media["schema"] = json!({
            "type": "object",
            "description": "One Server-Sent Event: its `event` name (the `type` of its data) and \
                            its `data`, a JSON document.",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": item},
                },
                "id": {"type": "string"},
            },
        });
        response["description"] = json!(format!(
            "A stream of Server-Sent Events, each a `{name}` as JSON in its `data`, named by its \
             `type` in its `event`; it ends after the `end` event."
        ));
    }
}

/// The schema a `#/components/schemas/…` reference points at.
fn referenced<'a>(schemas: &'a Value, reference: &str) -> Option<&'a Value> {
    schemas.get(reference.strip_prefix("#/components/schemas/")?)
}

fn unwrap_refs(value: &mut Value, schemas: &Value, in_parameter: bool) {
    match value {
        Value::Object(object) => {
            if let Some(plain) = unwrapped(object, schemas, in_parameter) {
                *value = plain;
                return;
            }
            for (key, child) in object.iter_mut() {
                if key == "parameters" {
                    let parameters = child.as_array_mut().into_iter().flatten();
                    for schema in parameters.filter_map(|p| p.get_mut("schema")) {
                        unwrap_refs(schema, schemas, true);
                    }
                } else {
                    unwrap_refs(child, schemas, in_parameter);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| unwrap_refs(item, schemas, in_parameter)),
        _ => {}
    }
}

/// `{allOf: [{$ref}, {description, default…}], …}` as a plain reference (or, for a
/// parameter, the enum it names inline); `None` for anything else.
fn unwrapped(object: &Map<String, Value>, schemas: &Value, in_parameter: bool) -> Option<Value> {
    let parts = object.get("allOf")?.as_array()?;
    let (first, rest) = parts.split_first()?;
    let reference = first.get("$ref")?.as_str()?;
    let annotations_only = |part: &Value| {
        part.as_object().is_some_and(|p| {
            !p.contains_key("$ref") && !p.contains_key("type") && !p.contains_key("properties")
        })
    };
    if !rest.iter().all(annotations_only) {
        return None;
    }
    let mut annotations = Map::new();
    for part in rest.iter().filter_map(Value::as_object) {
        annotations.extend(part.clone());
    }
    annotations.extend(
        object
            .iter()
            .filter(|(k, _)| *k != "allOf")
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let target = referenced(schemas, reference)?;
    if in_parameter && target.get("enum").is_some() {
        let mut inline = target.as_object()?.clone();
        inline.extend(annotations);
        return Some(Value::Object(inline));
    }
    let mut plain = Map::new();
    plain.insert("$ref".into(), reference.into());
    if let Some(description) = annotations.remove("description") {
        plain.insert("description".into(), description);
    }
    Some(Value::Object(plain))
}

fn bound_unsigned(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let format = object.get("format").and_then(Value::as_str);
            let largest = match format {
                Some("uint8") => Some(json!(u8::MAX)),
                Some("uint16") => Some(json!(u16::MAX)),
                Some("uint32") => Some(json!(u32::MAX)),
                Some("uint64") => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(largest) = largest {
                object.entry("minimum").or_insert(json!(0));
                // What the field's type holds: a larger number is not one of its values.
                object.entry("maximum").or_insert(largest);
            }
            object.values_mut().for_each(bound_unsigned);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_unsigned),
        _ => {}
    }
}

const ERROR_BODY: &str = "#/components/schemas/ErrorBody";

fn error_bodies_per_status(doc: &mut Value) {
    let mut used = std::collections::BTreeSet::new();
    for (status, response) in responses_mut(doc) {
        let Ok(status) = status.parse::<u16>() else {
            continue;
        };
        let contents = response.get_mut("content").and_then(Value::as_object_mut);
        for media in contents.into_iter().flat_map(|c| c.values_mut()) {
            if media["schema"]["$ref"] == ERROR_BODY {
                media["schema"] = json!({"$ref": error_schema_ref(status)});
                used.insert(status);
            }
        }
    }
    let base = doc["components"]["schemas"]["ErrorBody"].clone();
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has schemas");
    for status in used {
        let codes: Vec<String> = ErrorCode::ALL
            .iter()
            .filter(|c| c.info().statuses.contains(&status))
            .map(|c| c.name())
            .collect();
        let mut body = base.clone();
        let first = ErrorCode::ALL
            .iter()
            .find(|c| c.info().statuses.contains(&status))
            .expect("a status in use has a code");
        body["example"] = json!({"code": first.name(), "message": first.info().meaning});
        body["title"] = json!(format!("Error{status}"));
        body["description"] = json!(format!("The body of a {status} answer."));
        body["properties"]["code"] = json!({
            "type": "string",
            "enum": codes,
            "description": "Stable machine-readable code: what went wrong, for programs.",
        });
        schemas.insert(format!("Error{status}"), body);
    }
}

/// Every operation of the document (`paths.<path>.<method>`).
fn operations_mut(doc: &mut Value) -> impl Iterator<Item = &mut Value> {
    // (`get_mut`, not indexing: indexing a Value mutably adds the key it looks for.)
    doc.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|methods| methods.values_mut())
}

/// Every answer of every operation, with its status.
fn responses_mut(doc: &mut Value) -> impl Iterator<Item = (&String, &mut Value)> {
    operations_mut(doc)
        .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|responses| responses.iter_mut())
}

fn error_schema_ref(status: u16) -> String {
    format!("#/components/schemas/Error{status}")
}

fn describe_responses(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    for (status, response) in responses_mut(doc) {
        if response["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
        {
            continue;
        }
        let description = match status.as_str() {
            "204" => "Done; there is nothing to return.".to_string(),
            _ => answer_description(response, &schemas),
        };
        response["description"] = json!(description);
    }
}

/// "The account and its credits." from the answer's schema (a list says so).
fn answer_description(response: &Value, schemas: &Value) -> String {
    let Some(schema) = response["content"]
        .as_object()
        .and_then(|c| c.values().next())
        .map(|media| &media["schema"])
    else {
        return "Done.".into();
    };
    let (list, reference) = match schema["$ref"].as_str() {
        Some(r) => (false, Some(r)),
        None => (true, schema["items"]["$ref"].as_str()),
    };
    let described = reference
        .and_then(|r| referenced(schemas, r))
        .and_then(|s| s["description"].as_str())
        .map(first_sentence);
    match (list, described) {
        (false, Some(d)) => d,
        (true, Some(d)) => format!("A list, each item: {}", lower_first(&d)),
        (_, None) => "Done.".into(),
    }
}

fn first_sentence(text: &str) -> String {
    let text = text.split("\n\n").next().unwrap_or(text).replace('\n', " ");
    match text.find(". ") {
        Some(end) => text[..=end].to_string(),
        None => text,
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |c| {
        c.to_lowercase().collect::<String>() + chars.as_str()
    })
}

fn close_request_objects(doc: &mut Value) {
    let mut pending: Vec<String> = Vec::new();
    for op in operations_mut(doc) {
        collect_refs(&op["requestBody"], &mut pending);
        // An inline body (the upload's multipart form) is closed where it stands.
        // (`get_mut`, not indexing: indexing a Value mutably adds the key it looks for.)
        let contents = op
            .get_mut("requestBody")
            .and_then(|b| b.get_mut("content"))
            .and_then(Value::as_object_mut);
        for media in contents.into_iter().flat_map(|c| c.values_mut()) {
            if let Some(form) = media["schema"].as_object_mut()
                && form.contains_key("properties")
            {
                form.entry("additionalProperties")
                    .or_insert(Value::Bool(false));
            }
        }
    }
    let mut closed = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !closed.insert(name.clone()) {
            continue;
        }
        let schema = &mut doc["components"]["schemas"][&name];
        collect_refs(schema, &mut pending);
        if let Some(object) = schema.as_object_mut()
            && object.contains_key("properties")
        {
            object
                .entry("additionalProperties")
                .or_insert(Value::Bool(false));
        }
    }
}

/// OpenAPI links: where an answer's id is used next (a created run is fetched, cancelled and
/// its result read; an uploaded FMU fetched and deleted; a created key revoked). Clients and
/// stateful testers (schemathesis) follow them.
fn link_operations(doc: &mut Value) {
    type Link = (
        &'static str,
        &'static [&'static str],
        &'static str,
        &'static [&'static str],
    );
    const LINKS: &[Link] = &[
        (
            "createRun",
            &["201", "202"],
            "$response.body#/id",
            &["getRun", "cancelRun", "getRunResult"],
        ),
        (
            "uploadFmu",
            &["200", "201"],
            "$response.body#/id",
            &["getFmu", "deleteFmu"],
        ),
        (
            "createKey",
            &["201"],
            "$response.body#/key/id",
            &["revokeKey"],
        ),
    ];
    for op in operations_mut(doc) {
        let Some((_, statuses, id, targets)) =
            LINKS.iter().find(|(from, ..)| op["operationId"] == *from)
        else {
            continue;
        };
        for status in *statuses {
            let links: Map<String, Value> = targets
                .iter()
                .map(|to| {
                    let link = json!({"operationId": to, "parameters": {"id": id}});
                    (to.to_string(), link)
                })
                .collect();
            if let Some(response) = op
                .get_mut("responses")
                .and_then(|r| r.get_mut(*status))
                .and_then(Value::as_object_mut)
            {
                response.insert("links".into(), Value::Object(links));
            }
        }
    }
}

/// The names of the component schemas `value` refers to.
fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(name) = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                into.push(name.to_string());
            }
            object.values().for_each(|v| collect_refs(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

/// The methods each path of the document answers, for the `Allow` header of a 405: the
/// router knows a path exists but not, when refusing a method, which ones it has.
#[derive(Clone)]
pub struct PathMethods(std::sync::Arc<Vec<(Vec<String>, String)>>);

impl PathMethods {
    /// From the document's `paths` (templates like `/runs/{id}`). A path with `GET` also
    /// answers `HEAD`, as every route here does.
    pub fn of(doc: &str) -> Self {
        let doc: Value = serde_json::from_str(doc).expect("the document is JSON");
        let mut table = Vec::new();
        for (template, operations) in doc["paths"].as_object().into_iter().flatten() {
            let mut methods: Vec<String> = operations
                .as_object()
                .into_iter()
                .flatten()
                .map(|(m, _)| m.to_uppercase())
                .collect();
            if methods.iter().any(|m| m == "GET") {
                methods.push("HEAD".into());
            }
            const ORDER: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
            methods.sort_by_key(|m| ORDER.iter().position(|o| o == m));
            let segments = template.split('/').map(str::to_string).collect();
            table.push((segments, methods.join(", ")));
        }
        PathMethods(std::sync::Arc::new(table))
    }

    /// The `Allow` value for `path` (relative to the document's server URL); a template
    /// without parameters wins over one with, as in the router.
    pub fn allowed(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        let matches = |template: &[String], literal_only: bool| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (!literal_only && t.starts_with('{') && !s.is_empty()))
        };
        [true, false].into_iter().find_map(|literal_only| {
            self.0
                .iter()
                .find(|(template, _)| matches(template, literal_only))
                .map(|(_, methods)| methods.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_described_reference_becomes_a_plain_one_and_a_parameter_enum_inline() {
        let schemas = json!({"Sort": {"type": "string", "enum": ["a", "b"]}});
        let mut property = json!({"description": "why", "allOf": [
            {"$ref": "#/components/schemas/Sort"}, {"description": "why"}]});
        unwrap_refs(&mut property, &schemas, false);
        assert_eq!(
            property,
            json!({"$ref": "#/components/schemas/Sort", "description": "why"})
        );
        let mut parameters = json!({"parameters": [{"name": "sort", "schema": {
            "default": "a", "allOf": [{"$ref": "#/components/schemas/Sort"}, {"default": "a"}]}}]});
        unwrap_refs(&mut parameters, &schemas, false);
        assert_eq!(
            parameters["parameters"][0]["schema"],
            json!({"type": "string", "enum": ["a", "b"], "default": "a"})
        );
    }

    #[test]
    fn the_offset_bound_in_the_spec_is_the_one_the_domain_checks() {
        let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        for (path, parameters) in [
            ("/usage", &doc["paths"]["/usage"]["get"]["parameters"]),
            ("/runs", &doc["paths"]["/runs"]["get"]["parameters"]),
        ] {
            let offset = parameters
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "offset")
                .unwrap();
            assert_eq!(
                offset["schema"]["maximum"].as_f64(),
                Some(crate::domain::usage::MAX_OFFSET as f64),
                "{path}"
            );
        }
    }

    #[test]
    fn request_objects_are_closed_and_answers_are_not() {
        let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for name in ["RunCreate", "Signal", "NewKeyRequest", "CheckoutRequest"] {
            assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        }
        assert!(schemas["Run"].get("additionalProperties").is_none());
    }

    #[test]
    fn the_plans_for_sale_and_the_longest_run_are_stated() {
        let generated = crate::api::v1::service("http://x").spec();
        let mut config = Config::local(".".into());
        config.paid_plans.truncate(1);
        config.paid_plans[0].id = "team".into();
        config.max_run_time = std::time::Duration::from_secs(60);
        let doc: Value = serde_json::from_str(&refine(&generated, &config)).unwrap();
        let plan = &doc["components"]["schemas"]["CheckoutRequest"]["properties"]["plan"];
        assert_eq!(plan["enum"], json!(["team"]));
        let timeout = &doc["components"]["schemas"]["RunCreate"]["properties"]["timeout"];
        assert_eq!(timeout["maximum"], json!(60.0));
    }

    #[test]
    fn allow_lists_the_methods_of_the_matching_path() {
        let methods = PathMethods::of(&crate::api::spec_json());
        assert_eq!(methods.allowed("/runs"), Some("GET, HEAD, POST"));
        assert_eq!(methods.allowed("/runs/run_1/cancel"), Some("POST"));
        assert_eq!(methods.allowed("/keys/public-key"), Some("GET, HEAD"));
        assert_eq!(methods.allowed("/fmus/x"), Some("GET, HEAD, DELETE"));
        assert_eq!(methods.allowed("/nope"), None);
    }

    #[test]
    fn each_error_status_names_the_codes_it_can_carry() {
        let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let codes = &doc["components"]["schemas"]["Error401"]["properties"]["code"]["enum"];
        let codes: Vec<_> = codes.as_array().unwrap().iter().collect();
        assert!(codes.contains(&&json!("revoked_api_key")));
        assert!(!codes.contains(&&json!("not_found")));
    }
}
