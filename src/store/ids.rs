//! How the domain's ids and amounts are stored: ids as their text, credits as an integer
//! that a read refuses when negative (the schema's `CHECK`s keep it from happening; a row
//! that breaks them is an error, not a balance).

use super::sql::{FromSql, ToSql, Value};
use super::{StoreError, StoreResult};

use crate::domain::ids::{Credits, FmuId, KeyId, PurchaseId, RunId, SweepId, UserId};

macro_rules! stored_as_text {
    ($($name:ty),*) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> StoreResult<Value> {
                Ok(Value::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: &Value) -> StoreResult<Self> {
                value.as_str().map(<$name>::from)
            }
        }
    )*};
}

stored_as_text!(UserId, KeyId, RunId, FmuId, PurchaseId, SweepId);

impl ToSql for Credits {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::from(self.get()))
    }
}

impl FromSql for Credits {
    fn column_result(value: &Value) -> StoreResult<Self> {
        Credits::new(value.as_i64()?).map_err(StoreError::decode)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sql::{Connection, params};

    use super::*;

    #[test]
    fn ids_and_credits_round_trip_and_negative_credits_are_refused() {
        let conn = Connection::open_in_memory().unwrap();
        let run = RunId::generate();
        let back: RunId = conn.query_row("SELECT ?1", [&run], |r| r.get(0)).unwrap();
        assert_eq!(back, run);
        let five = Credits::new(5).unwrap();
        let back: Credits = conn.query_row("SELECT ?1", [five], |r| r.get(0)).unwrap();
        assert_eq!(back, five);
        let err = conn
            .query_row("SELECT -1", params![], |r| r.get::<Credits>(0))
            .unwrap_err();
        assert!(err.to_string().contains("cannot be negative"), "{err}");
    }
}
