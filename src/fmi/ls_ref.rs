//! Reference results an FMU carries, as the FMI layered standard FMI-LS-REF describes them.
//!
//! The manifest is `extra/org.fmi-standard.fmi-ls-ref/fmi-ls-manifest.xml`, root
//! `<fmiReferences>`. Its `<Related source=… role=… type=…>` elements name the related files,
//! `source` being a URI relative to the manifest's folder. We read two kinds:
//!
//! - `role="experiment"` (or a sub-role such as `experiment/smoke-test`): an experiments file
//!   (`<Experiments><Experiment name startTime stopTime stepSize tolerance>` with
//!   `<References source>`, the format of MA-HS-Experiments that FMI-LS-REF points to). Each
//!   experiment with `<References>` in CSV is a carried reference named by the experiment,
//!   whose settings are the experiment's. Release candidates of the standard put the
//!   `<Experiment>` elements in the manifest itself; those are read too.
//! - `role="result"` with `type="text/csv"` (what the FMI Reference FMUs ship): a reference
//!   named by its `source`, run with the model's default experiment.
//!
//! Where the standard is silent, our choices: an experiment's `stepSize` is the run's output
//! interval (the standard calls it the communication step, which is what fmusim records at);
//! the comparison tolerances are ours (the standard has none); experiments with
//! `<Parameters>` (SSV) or `<Stimuli>` are listed but cannot be run here, and say so, rather
//! than run without them; other related files and references in other formats (HDF5, MAT)
//! are ignored. A `source` that is an absolute URI or leaves the FMU is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The folder of this layered standard in an FMU.
pub const LS_REF_DIR: &str = "extra/org.fmi-standard.fmi-ls-ref";
/// Its manifest, in that folder.
pub const MANIFEST: &str = "fmi-ls-manifest.xml";
/// Largest manifest or experiments file read.
const MAX_XML_BYTES: u64 = 1 << 20;
/// Most carried references listed for one FMU.
const MAX_REFERENCES: usize = 100;

/// A reference result an FMU carries, with the settings to reproduce it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarriedReference {
    /// The experiment's name, or the result file's `source`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The CSV's path inside the FMU (relative to its root, `/`-separated).
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<f64>,
    /// The experiment's `stepSize`: the run's output interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_interval: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Why this reference cannot be run here (it needs parameters or stimuli).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// Why the references of an FMU cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LsRefError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

fn invalid(file: &str, message: impl Into<String>) -> LsRefError {
    LsRefError::Invalid {
        file: file.to_string(),
        message: message.into(),
    }
}

/// The references the FMU extracted at `fmu_dir` carries: none without a manifest.
pub fn carried_references(fmu_dir: &Path) -> Result<Vec<CarriedReference>, LsRefError> {
    let manifest = format!("{LS_REF_DIR}/{MANIFEST}");
    if !fmu_dir.join(&manifest).is_file() {
        return Ok(vec![]);
    }
    let text = read_text(fmu_dir, &manifest, MAX_XML_BYTES)?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| invalid(&manifest, e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "fmiReferences" {
        return Err(invalid(
            &manifest,
            "the root element is not <fmiReferences>",
        ));
    }
    let mut found = Vec::new();
    experiments(&root, &manifest, &mut found)?;
    for related in root.children().filter(|n| n.has_tag_name("Related")) {
        let (Some(source), Some(role)) = (related.attribute("source"), related.attribute("role"))
        else {
            continue;
        };
        let main_role = role.split('/').next().unwrap_or_default();
        let file = resolve(&manifest, source)?;
        match main_role {
            "experiment" => {
                let text = read_text(fmu_dir, &file, MAX_XML_BYTES)?;
                let doc =
                    roxmltree::Document::parse(&text).map_err(|e| invalid(&file, e.to_string()))?;
                experiments(&doc.root_element(), &file, &mut found)?;
            }
            "result" if is_csv(related.attribute("type")) => found.push(CarriedReference {
                name: source.to_string(),
                description: related.attribute("description").map(str::to_string),
                file,
                start_time: None,
                stop_time: None,
                output_interval: None,
                tolerance: None,
                unsupported: None,
            }),
            _ => {}
        }
    }
    if found.len() > MAX_REFERENCES {
        return Err(invalid(
            &manifest,
            format!("more than {MAX_REFERENCES} references"),
        ));
    }
    let mut names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(
            &manifest,
            format!("two references are named '{}'", twice[0]),
        ));
    }
    Ok(found)
}

/// The text of a carried reference's CSV.
pub fn read_reference(fmu_dir: &Path, reference: &CarriedReference) -> Result<String, LsRefError> {
    read_text(
        fmu_dir,
        &reference.file,
        crate::sim::reference::MAX_REFERENCE_BYTES as u64,
    )
}

/// The `<Experiment>` children of `element` that carry CSV references.
fn experiments(
    element: &roxmltree::Node<'_, '_>,
    file: &str,
    found: &mut Vec<CarriedReference>,
) -> Result<(), LsRefError> {
    for experiment in element.children().filter(|n| n.has_tag_name("Experiment")) {
        let Some(references) = experiment.children().find(|n| n.has_tag_name("References")) else {
            continue;
        };
        if !is_csv(references.attribute("type")) {
            continue;
        }
        let name = experiment
            .attribute("name")
            .ok_or_else(|| invalid(file, "an <Experiment> without a name"))?;
        let source = references.attribute("source").ok_or_else(|| {
            invalid(
                file,
                format!("experiment '{name}': <References> without a source"),
            )
        })?;
        let number = |attribute: &str| -> Result<Option<f64>, LsRefError> {
            experiment
                .attribute(attribute)
                .map(|v| {
                    v.trim().parse::<f64>().map_err(|_| {
                        invalid(
                            file,
                            format!("experiment '{name}': {attribute} '{v}' is not a number"),
                        )
                    })
                })
                .transpose()
        };
        let needs: Vec<&str> = ["Parameters", "Stimuli"]
            .into_iter()
            .filter(|tag| experiment.children().any(|n| n.has_tag_name(*tag)))
            .collect();
        found.push(CarriedReference {
            name: name.to_string(),
            description: experiment.attribute("description").map(str::to_string),
            file: resolve(file, source)?,
            start_time: number("startTime")?,
            stop_time: number("stopTime")?,
            output_interval: number("stepSize")?,
            tolerance: number("tolerance")?,
            unsupported: (!needs.is_empty()).then(|| {
                format!(
                    "experiment '{name}' needs its {}, which this service does not apply yet",
                    needs.join(" and ")
                )
            }),
        });
    }
    Ok(())
}

/// `text/csv` (the default of `<References>`), or no type at all.
fn is_csv(r#type: Option<&str>) -> bool {
    r#type.is_none_or(|t| t.trim().eq_ignore_ascii_case("text/csv"))
}

/// `source`, a URI relative to the file `base` (a path inside the FMU), as a path inside the
/// FMU; refused when it is absolute or leaves the FMU.
fn resolve(base: &str, source: &str) -> Result<String, LsRefError> {
    let refuse = |why: &str| invalid(base, format!("source '{source}' {why}"));
    if source.contains(':') || source.starts_with('/') || source.contains('\\') {
        return Err(refuse("is not a path relative to the FMU"));
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(|| refuse("leaves the FMU"))?;
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return Err(refuse("names no file"));
    }
    Ok(parts.join("/"))
}

/// A file inside the FMU as text, at most `max` bytes.
fn read_text(fmu_dir: &Path, file: &str, max: u64) -> Result<String, LsRefError> {
    // `file` came through `resolve` (or is the manifest's own path): inside the FMU.
    let path: PathBuf = fmu_dir.join(file);
    let io = |source| LsRefError::Io {
        file: file.to_string(),
        source,
    };
    let size = std::fs::metadata(&path).map_err(io)?.len();
    if size > max {
        return Err(invalid(file, format!("larger than {max} bytes")));
    }
    let bytes = std::fs::read(&path).map_err(io)?;
    String::from_utf8(bytes).map_err(|_| invalid(file, "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmu(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const MANIFEST_PATH: &str = "extra/org.fmi-standard.fmi-ls-ref/fmi-ls-manifest.xml";

    #[test]
    fn experiments_and_results_are_read_with_their_settings() {
        let dir = fmu(&[
            (
                MANIFEST_PATH,
                r#"<fmiReferences xmlns:fmi-ls="http://fmi-standard.org/fmi-ls-manifest"
                     fmi-ls:fmi-ls-name="org.fmi-standard.fmi-ls-ref" fmi-ls:fmi-ls-version="1.0.0-beta.1">
                   <Related type="application/xml" source="experiments.xml" role="experiment/smoke-test"/>
                   <Related type="text/csv" source="out.csv" role="result" description="default"/>
                   <Related type="text/modelica" source="model.mo" role="model"/>
                 </fmiReferences>"#,
            ),
            (
                "extra/org.fmi-standard.fmi-ls-ref/experiments.xml",
                r#"<Experiments>
                     <Experiment name="short" startTime="0" stopTime="1" stepSize="0.01" tolerance="1e-6">
                       <References source="refs/short.csv"/>
                     </Experiment>
                     <Experiment name="stimulated" stopTime="2">
                       <Stimuli source="in.csv"/>
                       <References source="../../documentation/stim.csv"/>
                     </Experiment>
                     <Experiment name="hdf"><References source="x.h5" type="application/hdf5"/></Experiment>
                   </Experiments>"#,
            ),
        ]);
        let refs = carried_references(dir.path()).unwrap();
        let names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["short", "stimulated", "out.csv"]);
        assert_eq!(
            refs[0].file,
            "extra/org.fmi-standard.fmi-ls-ref/refs/short.csv"
        );
        assert_eq!(
            (
                refs[0].stop_time,
                refs[0].output_interval,
                refs[0].tolerance
            ),
            (Some(1.0), Some(0.01), Some(1e-6))
        );
        assert_eq!(refs[1].file, "documentation/stim.csv");
        assert!(refs[1].unsupported.as_deref().unwrap().contains("Stimuli"));
        assert_eq!(refs[2].description.as_deref(), Some("default"));
    }

    #[test]
    fn an_fmu_without_a_manifest_carries_nothing_and_escapes_are_refused() {
        let dir = fmu(&[("modelDescription.xml", "<x/>")]);
        assert!(carried_references(dir.path()).unwrap().is_empty());
        for source in ["../../../etc/passwd", "/etc/passwd", "file:///etc/passwd"] {
            let manifest = format!(
                r#"<fmiReferences><Related type="text/csv" source="{source}" role="result"/></fmiReferences>"#
            );
            let dir = fmu(&[(MANIFEST_PATH, &manifest)]);
            let e = carried_references(dir.path()).unwrap_err().to_string();
            assert!(e.contains(source), "{e}");
        }
    }
}
