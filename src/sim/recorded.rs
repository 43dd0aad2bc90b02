//! What a run records: each variable's type and shape, and its values column by column.
//!
//! Every FMI type is kept as it is (FMPy and fmusim record them all): a result that quietly
//! turned an Int64 into a float, a Boolean into 1.0 or an array into its first element would
//! be wrong data, the worst failure a simulation service can have. An array variable is
//! recorded element by element, one column per element (`y[1]`, `y[2]`, … row-major, as FMI's
//! structured names count), and its shape travels with it so JSON can nest the elements again.
//!
//! Columns are stored in cells of a fixed width so any value is one positioned read away
//! (`sim::result_file`): 8 bytes for every number and Boolean, 16 for a String or Binary (the
//! offset and length of its bytes in a blob stored after the cells).

use serde::{Deserialize, Serialize};

use crate::format::{Number, non_finite_name};

/// The type of a recorded variable, as FMI 3 names its types. FMI 2's `Real` is `float64`
/// and its `Integer` is `int32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    Float64,
    Float32,
    Int8,
    UInt8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Boolean,
    String,
    /// Written as lowercase hexadecimal, two digits a byte (as fmusim writes and reads it).
    Binary,
    /// Stored as its integer value; JSON shows the item's name.
    Enumeration,
}

/// How a type's values are held in memory and in a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Float,
    Int,
    UInt,
    Bool,
    Text,
    Bytes,
}

impl ValueType {
    /// The type of a variable of the FMI type `name` (FMI 2 or 3, as the model description
    /// names it); `None` for a Clock, which has no value between events to record.
    pub fn from_fmi(name: &str) -> Option<ValueType> {
        use ValueType as T;
        Some(match name {
            "Real" | "Float64" => T::Float64,
            "Float32" => T::Float32,
            "Int8" => T::Int8,
            "UInt8" => T::UInt8,
            "Int16" => T::Int16,
            "UInt16" => T::UInt16,
            "Integer" | "Int32" => T::Int32,
            "UInt32" => T::UInt32,
            "Int64" => T::Int64,
            "UInt64" => T::UInt64,
            "Boolean" => T::Boolean,
            "String" => T::String,
            "Binary" => T::Binary,
            "Enumeration" => T::Enumeration,
            _ => return None,
        })
    }

    pub fn storage(self) -> Storage {
        use ValueType as T;
        match self {
            T::Float64 | T::Float32 => Storage::Float,
            T::Int8 | T::UInt8 | T::Int16 | T::UInt16 | T::Int32 | T::UInt32 | T::Int64 => {
                Storage::Int
            }
            T::Enumeration => Storage::Int,
            T::UInt64 => Storage::UInt,
            T::Boolean => Storage::Bool,
            T::String => Storage::Text,
            T::Binary => Storage::Bytes,
        }
    }

    /// The values a type narrower than its 64-bit cell holds (`None`: every cell value is one).
    pub fn int_range(self) -> Option<(i64, i64)> {
        use ValueType as T;
        match self {
            T::Int8 => Some((i8::MIN.into(), i8::MAX.into())),
            T::UInt8 => Some((0, u8::MAX.into())),
            T::Int16 => Some((i16::MIN.into(), i16::MAX.into())),
            T::UInt16 => Some((0, u16::MAX.into())),
            T::Int32 => Some((i32::MIN.into(), i32::MAX.into())),
            T::UInt32 => Some((0, u32::MAX.into())),
            _ => None,
        }
    }

    /// Bytes of one stored value.
    pub fn cell_bytes(self) -> u64 {
        match self.storage() {
            Storage::Text | Storage::Bytes => 16,
            _ => 8,
        }
    }

    /// The whole numbers a value of this integer type can hold; `None` for other types.
    pub fn integer_range(self) -> Option<(i128, i128)> {
        use ValueType as T;
        Some(match self {
            T::Int8 => (i8::MIN.into(), i8::MAX.into()),
            T::UInt8 => (0, u8::MAX.into()),
            T::Int16 => (i16::MIN.into(), i16::MAX.into()),
            T::UInt16 => (0, u16::MAX.into()),
            T::Int32 => (i32::MIN.into(), i32::MAX.into()),
            T::UInt32 => (0, u32::MAX.into()),
            T::Int64 | T::Enumeration => (i64::MIN.into(), i64::MAX.into()),
            T::UInt64 => (0, u64::MAX.into()),
            _ => return None,
        })
    }

    /// Whether a plot can draw it (numbers, Booleans and enumerations, as their values).
    pub fn is_numeric(self) -> bool {
        !matches!(self.storage(), Storage::Text | Storage::Bytes)
    }
}

pub use crate::fmi::describe::Item;

/// One recorded variable: its name (the one the caller asked for, so an alias names its own
/// column), type and shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub name: String,
    #[serde(rename = "type")]
    pub r#type: ValueType,
    /// The array's size in each dimension; empty for a scalar.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape: Vec<u64>,
    /// An enumeration's items, to show values by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// The unit its values are in: the model's unit, or the display unit asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Set when the values are converted from the model's unit to a display unit: each
    /// value becomes `factor · value + offset` (the FMI rule), done by the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<Scale>,
}

/// A display unit's conversion from the model's unit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub factor: f64,
    pub offset: f64,
}

impl Recorded {
    pub fn scalar(name: impl Into<String>, r#type: ValueType) -> Recorded {
        Recorded {
            name: name.into(),
            r#type,
            shape: Vec::new(),
            items: Vec::new(),
            unit: None,
            display: None,
        }
    }

    /// Elements (columns) it takes: the product of its shape, 1 for a scalar; `None` if that
    /// overflows.
    pub fn elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
    }

    /// The column names of its elements: the name itself for a scalar, else `y[1]`, `y[2]`,
    /// … and `A[1,1]`, `A[1,2]`, … in row-major order (FMI's structured names, counted from
    /// 1, as FMPy and fmusim name them).
    pub fn element_names(&self) -> Vec<String> {
        if self.shape.is_empty() {
            return vec![self.name.clone()];
        }
        let count = self.elements().unwrap_or(0);
        let mut index = vec![1u64; self.shape.len()];
        let mut names = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let parts: Vec<String> = index.iter().map(u64::to_string).collect();
            names.push(format!("{}[{}]", self.name, parts.join(",")));
            for (i, size) in index.iter_mut().zip(&self.shape).rev() {
                if *i < *size {
                    *i += 1;
                    break;
                }
                *i = 1;
            }
        }
        names
    }

    /// The name of an enumeration value: its item's name, or the number itself if no item
    /// has it (an FMU may hold any value of the type's range).
    pub fn item_name(&self, value: i64) -> std::borrow::Cow<'_, str> {
        match self.items.iter().find(|i| i.value == value) {
            Some(item) => item.name.as_str().into(),
            None => value.to_string().into(),
        }
    }
}

/// The recorded values of one column, in the storage of its type.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
    UInt(Vec<u64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
    Bytes(Vec<Vec<u8>>),
}

impl Values {
    pub fn new(storage: Storage, capacity: usize) -> Values {
        match storage {
            Storage::Float => Values::Float(Vec::with_capacity(capacity)),
            Storage::Int => Values::Int(Vec::with_capacity(capacity)),
            Storage::UInt => Values::UInt(Vec::with_capacity(capacity)),
            Storage::Bool => Values::Bool(Vec::with_capacity(capacity)),
            Storage::Text => Values::Text(Vec::with_capacity(capacity)),
            Storage::Bytes => Values::Bytes(Vec::with_capacity(capacity)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::UInt(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn storage(&self) -> Storage {
        match self {
            Values::Float(_) => Storage::Float,
            Values::Int(_) => Storage::Int,
            Values::UInt(_) => Storage::UInt,
            Values::Bool(_) => Storage::Bool,
            Values::Text(_) => Storage::Text,
            Values::Bytes(_) => Storage::Bytes,
        }
    }

    /// Value `i` as a number for a plot or a summary (Booleans 0 and 1); `None` for text.
    pub fn number(&self, i: usize) -> Option<f64> {
        match self {
            Values::Float(v) => v.get(i).copied(),
            Values::Int(v) => v.get(i).map(|&x| x as f64),
            Values::UInt(v) => v.get(i).map(|&x| x as f64),
            Values::Bool(v) => v.get(i).map(|&b| f64::from(u8::from(b))),
            Values::Text(_) | Values::Bytes(_) => None,
        }
    }

    /// Keeps the values whose `keep` is true.
    pub fn retain_rows(&mut self, keep: &[bool]) {
        fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep.get(i - 1).copied().unwrap_or(true)
            });
        }
        match self {
            Values::Float(v) => retain(v, keep),
            Values::Int(v) => retain(v, keep),
            Values::UInt(v) => retain(v, keep),
            Values::Bool(v) => retain(v, keep),
            Values::Text(v) => retain(v, keep),
            Values::Bytes(v) => retain(v, keep),
        }
    }

    /// The values of a float column.
    pub fn as_floats(&self) -> Option<&[f64]> {
        match self {
            Values::Float(v) => Some(v),
            _ => None,
        }
    }

    /// Every value as a number (see [`Values::number`]); `None` for text.
    pub fn numbers(&self) -> Option<Vec<f64>> {
        match self {
            Values::Float(v) => Some(v.clone()),
            Values::Text(_) | Values::Bytes(_) => None,
            other => Some((0..other.len()).filter_map(|i| other.number(i)).collect()),
        }
    }

    /// The bytes of the variable-length values (String and Binary), for the blob.
    fn blob_parts(&self) -> Option<Box<dyn Iterator<Item = &[u8]> + '_>> {
        match self {
            Values::Text(v) => Some(Box::new(v.iter().map(String::as_bytes))),
            Values::Bytes(v) => Some(Box::new(v.iter().map(Vec::as_slice))),
            _ => None,
        }
    }
}

/// One recorded column: an element of a variable (the variable itself if it is a scalar).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

/// The columns a list of variables takes, in order, with the variable each belongs to.
pub fn element_columns(variables: &[Recorded]) -> Vec<(usize, String)> {
    variables
        .iter()
        .enumerate()
        .flat_map(|(i, v)| v.element_names().into_iter().map(move |n| (i, n)))
        .collect()
}

/// Bytes of the blob the columns' String and Binary values take.
pub fn blob_bytes(columns: &[Column]) -> u64 {
    columns
        .iter()
        .filter_map(|c| c.values.blob_parts())
        .flatten()
        .map(|b| b.len() as u64)
        .sum()
}

/// Writes `columns` as stored: each column's cells in order, then the blob. `offset` is where
/// the blob's first byte will be counted from (0: the blob's start).
pub fn write_cells(columns: &[Column], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut offset = 0u64;
    for column in columns {
        match &column.values {
            Values::Float(v) => v.iter().try_for_each(|x| out.write_all(&x.to_le_bytes()))?,
            Values::Int(v) => v.iter().try_for_each(|x| out.write_all(&x.to_le_bytes()))?,
            Values::UInt(v) => v.iter().try_for_each(|x| out.write_all(&x.to_le_bytes()))?,
            Values::Bool(v) => v
                .iter()
                .try_for_each(|&b| out.write_all(&u64::from(b).to_le_bytes()))?,
            values => {
                for part in values.blob_parts().into_iter().flatten() {
                    out.write_all(&offset.to_le_bytes())?;
                    out.write_all(&(part.len() as u64).to_le_bytes())?;
                    offset += part.len() as u64;
                }
            }
        }
    }
    for column in columns {
        for part in column.values.blob_parts().into_iter().flatten() {
            out.write_all(part)?;
        }
    }
    Ok(())
}

/// Writes value `i` of `values` (a column of `variable`) as JSON.
pub fn write_json(variable: &Recorded, values: &Values, i: usize, out: &mut Vec<u8>) {
    let mut number = ryu::Buffer::new();
    match values {
        Values::Float(v) => {
            let x = v[i];
            match non_finite_name(x) {
                Some(name) => {
                    out.push(b'"');
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'"');
                }
                // As serde_json writes numbers (shortest round-trip); a Float32 as the
                // shortest text that reads back as the same Float32.
                None if variable.r#type == ValueType::Float32 => {
                    out.extend_from_slice(number.format_finite(x as f32).as_bytes())
                }
                None => out.extend_from_slice(number.format_finite(x).as_bytes()),
            }
        }
        Values::Int(v) if variable.r#type == ValueType::Enumeration => {
            json_string(&variable.item_name(v[i]), out)
        }
        Values::Int(v) => out.extend_from_slice(v[i].to_string().as_bytes()),
        Values::UInt(v) => out.extend_from_slice(v[i].to_string().as_bytes()),
        Values::Bool(v) => out.extend_from_slice(if v[i] { b"true" } else { b"false" }),
        Values::Text(v) => json_string(&v[i], out),
        Values::Bytes(v) => json_string(&hex::encode(&v[i]), out),
    }
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("a string always serialises");
}

/// Writes value `i` of `values` as a CSV field, as fmusim writes them: Booleans
/// `true`/`false`, Binary as hex, enumerations as their integer value, floats in their
/// shortest round-trip form (`nan`, `inf` as FMPy), text quoted where RFC 4180 says to.
/// Numbers are written straight into `out`: a large download formats millions of them.
pub fn write_csv(variable: &Recorded, values: &Values, i: usize, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = match values {
        Values::Float(v) if variable.r#type == ValueType::Float32 => {
            write!(out, "{}", crate::format::Number32(v[i] as f32))
        }
        Values::Float(v) => write!(out, "{}", Number(v[i])),
        Values::Int(v) => write!(out, "{}", v[i]),
        Values::UInt(v) => write!(out, "{}", v[i]),
        Values::Bool(v) => out.write_all(if v[i] { b"true" } else { b"false" }),
        Values::Text(v) => out.write_all(crate::format::csv_quoted(&v[i]).as_bytes()),
        Values::Bytes(v) => out.write_all(hex::encode(&v[i]).as_bytes()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_are_named_row_major_from_one() {
        let mut v = Recorded::scalar("A", ValueType::Float64);
        assert_eq!(v.element_names(), ["A"]);
        v.shape = vec![2, 3];
        assert_eq!(
            v.element_names(),
            ["A[1,1]", "A[1,2]", "A[1,3]", "A[2,1]", "A[2,2]", "A[2,3]"]
        );
        v.shape = vec![0];
        assert!(v.element_names().is_empty());
    }

    #[test]
    fn every_fmi_type_has_one_and_clocks_none() {
        for (fmi, t) in [
            ("Real", ValueType::Float64),
            ("Integer", ValueType::Int32),
            ("UInt64", ValueType::UInt64),
            ("Enumeration", ValueType::Enumeration),
        ] {
            assert_eq!(ValueType::from_fmi(fmi), Some(t));
        }
        assert_eq!(ValueType::from_fmi("Clock"), None);
        assert_eq!(
            serde_json::to_string(&ValueType::UInt64).unwrap(),
            "\"uint64\""
        );
    }
}
