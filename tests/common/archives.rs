//! FMUs the zip writer will not make: library models repacked with an entry listed twice, or
//! with their interfaces rewritten, to drive the archive and interface checks end to end.

use std::io::{Cursor, Read, Write};

use fmu_gateway::fmi::library::DEMO_FMUS;

/// The bytes of a built-in library model (`version` "3.0" or "2.0").
pub fn library_fmu(model: &str, version: &str) -> &'static [u8] {
    DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == model && *v == version)
        .map(|(_, _, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no library model {model} {version}"))
}

/// The files of an FMU, in archive order (directories left out).
pub fn files_of(fmu: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(fmu)).unwrap();
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        if entry.is_dir() {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.push((entry.name().unwrap().to_string(), data));
    }
    files
}

/// A zip of these files, deflated.
pub fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        out.start_file(name.as_str(), options).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// `fmu` with `name` added twice: first with `first`, then with `second`, as an exporter that
/// lists a file twice writes it.
pub fn with_entry_twice(fmu: &[u8], name: &str, first: &[u8], second: &[u8]) -> Vec<u8> {
    // The zip writer refuses a name twice: the second copy is written under a stand-in of the
    // same length, then renamed in its headers.
    let stand_in = format!("{}#", &name[..name.len() - 1]);
    let mut files = files_of(fmu);
    files.push((name.to_string(), first.to_vec()));
    files.push((stand_in.clone(), second.to_vec()));
    let mut bytes = zip_of(&files);
    rename_entry(&mut bytes, &stand_in, name);
    bytes
}

/// Renames entry `from` to `to` (same length) in its local and central headers.
pub fn rename_entry(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len(), "a rename keeps the length");
    let mut renamed = 0;
    let mut i = 0;
    while i + 46 <= bytes.len() {
        let signature = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        let (name_len_at, name_at) = match signature {
            0x0403_4b50 => (i + 26, i + 30),
            0x0201_4b50 => (i + 28, i + 46),
            _ => {
                i += 1;
                continue;
            }
        };
        let len = u16::from_le_bytes(bytes[name_len_at..name_len_at + 2].try_into().unwrap());
        if bytes.get(name_at..name_at + len as usize) == Some(from.as_bytes()) {
            bytes[name_at..name_at + len as usize].copy_from_slice(to.as_bytes());
            renamed += 1;
        }
        i += 4;
    }
    assert_eq!(
        renamed, 2,
        "expected a local and a central header for {from}"
    );
}

/// `fmu` (FMI 3) with its `<CoSimulation>` and `<ModelExchange>` elements replaced by
/// `interfaces` (XML, possibly empty), binaries untouched.
pub fn with_interfaces(fmu: &[u8], interfaces: &str) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = files_of(fmu)
        .into_iter()
        .map(|(name, data)| {
            if name != "modelDescription.xml" {
                return (name, data);
            }
            let mut xml = String::from_utf8(data).unwrap();
            let at = xml
                .find("<ModelExchange")
                .expect("a Model Exchange element");
            xml.insert_str(at, interfaces);
            for element in ["<ModelExchange", "<CoSimulation"] {
                let start = xml.find(element).unwrap();
                let end = start + xml[start..].find("/>").unwrap() + 2;
                xml.replace_range(start..end, "");
            }
            (name, xml.into_bytes())
        })
        .collect();
    zip_of(&files)
}

/// `fmu` with its `modelDescription.xml` rewritten by `edit`, every other file untouched.
pub fn with_model_description(fmu: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = files_of(fmu)
        .into_iter()
        .map(|(name, data)| {
            if name != "modelDescription.xml" {
                return (name, data);
            }
            let xml = String::from_utf8(data).unwrap();
            (name, edit(&xml).into_bytes())
        })
        .collect();
    zip_of(&files)
}

/// The library's BouncingBall (`version` "3.0" or "2.0") with a second name, `height`, for
/// its `h`: FMI 3 an `<Alias name="height" description="Height of the ball"/>` under `h`;
/// FMI 2 a ScalarVariable `height` with `h`'s value reference, appended after the others so
/// the indices `<ModelStructure>` uses stay as they are.
pub fn bouncing_ball_with_alias(version: &str) -> Vec<u8> {
    with_model_description(library_fmu("BouncingBall", version), |xml| {
        let mut xml = xml.to_string();
        if version == "3.0" {
            xml = with_fmi3_alias(
                &xml,
                "h",
                r#"<Alias name="height" description="Height of the ball"/>"#,
            );
        } else {
            let at = xml.find("</ModelVariables>").expect("ModelVariables");
            xml.insert_str(
                at,
                "<ScalarVariable name=\"height\" valueReference=\"1\" description=\"Height of the ball\" causality=\"local\" variability=\"continuous\"><Real unit=\"m\"/></ScalarVariable>\n",
            );
        }
        xml
    })
}

/// FMI 3 model description `xml` with `alias` (an `<Alias …/>` element) added under the
/// Float64 variable `variable`, after the aliases it has (the library's BouncingBall gives h
/// the alias h_ft).
pub fn with_fmi3_alias(xml: &str, variable: &str, alias: &str) -> String {
    let start = xml
        .find(&format!("<Float64 name=\"{variable}\" "))
        .unwrap_or_else(|| panic!("no Float64 {variable}"));
    let tag_end = start + xml[start..].find('>').unwrap();
    let mut xml = xml.to_string();
    if xml[..tag_end].ends_with('/') {
        xml.replace_range(tag_end - 1..tag_end + 1, &format!(">{alias}</Float64>"));
    } else {
        let close = tag_end + xml[tag_end..].find("</Float64>").unwrap();
        xml.insert_str(close, alias);
    }
    xml
}
