//! Reads a MAT version 4 file (little-endian), as MATLAB and scipy.io.loadmat do, to check
//! what the service writes: each matrix's type, shape and elements (column by column).

use std::collections::BTreeMap;

/// One matrix: its MAT v4 type code (0 double, 20 int32, 51 text), rows, columns and
/// elements in file order (column-major), as f64 (every element type we write is exact in
/// one) or as bytes for text.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub type_code: i32,
    pub rows: usize,
    pub columns: usize,
    pub numbers: Vec<f64>,
    pub bytes: Vec<u8>,
}

impl Matrix {
    /// Element (row, column), 0-based.
    pub fn at(&self, row: usize, column: usize) -> f64 {
        self.numbers[column * self.rows + row]
    }

    /// The strings of a text matrix: each column (`transposed`, Dymola's `name`) or each row,
    /// trailing spaces removed.
    pub fn strings(&self, transposed: bool) -> Vec<String> {
        let (count, width) = if transposed {
            (self.columns, self.rows)
        } else {
            (self.rows, self.columns)
        };
        (0..count)
            .map(|s| {
                let bytes: Vec<u8> = (0..width)
                    .map(|i| {
                        let (row, column) = if transposed { (i, s) } else { (s, i) };
                        self.bytes[column * self.rows + row]
                    })
                    .collect();
                String::from_utf8(bytes).unwrap().trim_end().to_string()
            })
            .collect()
    }
}

/// Every matrix of the file by name, in a map, with the names in file order.
pub fn read(bytes: &[u8]) -> (Vec<String>, BTreeMap<String, Matrix>) {
    let int = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let (mut at, mut order, mut matrices) = (0, Vec::new(), BTreeMap::new());
    while at < bytes.len() {
        let (type_code, rows, columns, imaginary, name_len) = (
            int(at),
            int(at + 4),
            int(at + 8),
            int(at + 12),
            int(at + 16),
        );
        assert_eq!(imaginary, 0, "no complex matrices");
        at += 20;
        let name_bytes = &bytes[at..at + name_len as usize];
        assert_eq!(name_bytes.last(), Some(&0), "a NUL-terminated name");
        let name = String::from_utf8(name_bytes[..name_bytes.len() - 1].to_vec()).unwrap();
        at += name_len as usize;
        let count = (rows * columns) as usize;
        let size = match type_code {
            0 => 8,
            20 => 4,
            51 => 1,
            other => panic!("{name}: type {other} is not one we write"),
        };
        let data = &bytes[at..at + count * size];
        at += count * size;
        let numbers = match type_code {
            0 => data
                .chunks(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            20 => data
                .chunks(4)
                .map(|b| f64::from(i32::from_le_bytes(b.try_into().unwrap())))
                .collect(),
            _ => vec![],
        };
        order.push(name.clone());
        matrices.insert(
            name,
            Matrix {
                type_code,
                rows: rows as usize,
                columns: columns as usize,
                numbers,
                bytes: if type_code == 51 {
                    data.to_vec()
                } else {
                    vec![]
                },
            },
        );
    }
    (order, matrices)
}

/// A Dymola result file's variables: each name with its values over time (time first),
/// found through `dataInfo` as Dymola's readers find them; checks the layout on the way.
pub fn dymola_variables(bytes: &[u8]) -> Vec<(String, Vec<f64>)> {
    let (order, m) = read(bytes);
    assert_eq!(
        order,
        [
            "Aclass",
            "name",
            "description",
            "dataInfo",
            "data_1",
            "data_2"
        ]
    );
    assert_eq!(
        m["Aclass"].strings(false),
        ["Atrajectory", "1.1", "", "binTrans"]
    );
    let names = m["name"].strings(true);
    let info = &m["dataInfo"];
    assert_eq!(
        (info.type_code, info.rows, info.columns),
        (20, 4, names.len())
    );
    assert_eq!(m["description"].columns, names.len());
    let data_2 = &m["data_2"];
    assert_eq!(data_2.rows, names.len(), "binTrans: a row per variable");
    let ntime = data_2.columns;
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (matrix, column) = (info.at(0, i), info.at(1, i));
            assert_eq!(info.at(2, i), 0.0, "{name}: linear interpolation");
            assert_eq!(info.at(3, i), -1.0, "{name}: undefined outside");
            let row = column.abs() as usize - 1;
            if i == 0 {
                assert_eq!((matrix, column), (0.0, 1.0), "time is the abscissa");
            } else {
                assert_eq!((matrix, column), (2.0, i as f64 + 1.0), "{name}");
            }
            let values = (0..ntime).map(|t| data_2.at(row, t)).collect();
            (name.clone(), values)
        })
        .collect()
}
