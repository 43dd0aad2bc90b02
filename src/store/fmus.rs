//! The `fmus` and `fmu_owners` tables: the registry's metadata.
//!
//! The registry (`domain::fmus`) keeps the files; the operations on [`Store`] here record
//! them, each in one transaction where it writes more than one statement.

use super::sql::{Connection, OptionalExtension, Row, params};

use super::{Store, StoreResult, write_tx};
use crate::domain::ids::{FmuId, UserId};

/// An FMU as one user sees it.
#[derive(Clone, Debug)]
pub struct FmuRow {
    pub id: FmuId,
    pub library_id: Option<String>,
    pub model_name: String,
    pub fmi_version: String,
    pub size_bytes: i64,
    /// JSON of `fmi::describe::ModelInfo`.
    pub info: String,
    pub created_at: i64,
    /// The caller's file name for an upload, `None` for a library model.
    pub file_name: Option<String>,
}

fn from_row(r: &Row) -> StoreResult<FmuRow> {
    Ok(FmuRow {
        id: r.get(0)?,
        library_id: r.get(1)?,
        model_name: r.get(2)?,
        fmi_version: r.get(3)?,
        size_bytes: r.get(4)?,
        info: r.get(5)?,
        created_at: r.get(6)?,
        file_name: r.get(7)?,
    })
}

/// Columns for a user's view: their file name when they uploaded it.
const SELECT: &str = "SELECT f.id, f.library_id, f.model_name, f.fmi_version, f.size_bytes, f.info,
        f.created_at, o.file_name
    FROM fmus f LEFT JOIN fmu_owners o ON o.fmu_id = f.id AND o.user_id = ?1";

fn exists(conn: &Connection, id: &FmuId) -> StoreResult<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM fmus WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// An FMU's metadata to record, once its files are in place.
#[derive(Clone, Debug)]
pub struct NewFmu {
    /// The SHA-256 of its file.
    pub id: FmuId,
    pub model_name: String,
    pub fmi_version: String,
    /// The file's size.
    pub size_bytes: i64,
    /// What it takes on disk: the file and its extracted tree.
    pub stored_bytes: i64,
    /// JSON of `fmi::describe::ModelInfo`.
    pub info: String,
    pub created_at: i64,
}

/// Inserts an FMU's metadata unless the id is known (same bytes). `library_id` makes it a
/// library model.
fn insert(conn: &Connection, fmu: &NewFmu, library_id: Option<&str>) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO fmus (id, library_id, model_name, fmi_version, size_bytes, stored_bytes,
             info, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO NOTHING",
        params![
            fmu.id,
            library_id,
            fmu.model_name,
            fmu.fmi_version,
            fmu.size_bytes,
            fmu.stored_bytes,
            fmu.info,
            fmu.created_at
        ],
    )?;
    Ok(())
}

/// Takes a library id off the FMU that had it (a rebuilt library model replaces it). The old
/// row stays for the users who uploaded those bytes themselves.
fn retire_library_id(conn: &Connection, library_id: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE fmus SET library_id = NULL WHERE library_id = ?1",
        [library_id],
    )?;
    Ok(())
}

/// What recording an upload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owned {
    /// The user now has this FMU.
    Added,
    /// They had uploaded the same bytes before; the first record stays.
    AlreadyOwned,
    /// It would take their uploads past `quota` bytes: nothing was recorded.
    OverQuota { used: i64, adding: i64 },
}

/// Records that the user uploaded the FMU, if it fits in their storage quota. One write
/// transaction: two uploads at once cannot both fit into the same free space.
fn add_owner(
    conn: &mut Connection,
    fmu_id: &FmuId,
    user_id: &UserId,
    file_name: &str,
    now: i64,
    quota: i64,
) -> StoreResult<Owned> {
    let tx = write_tx(conn)?;
    let owned: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM fmu_owners WHERE fmu_id = ?1 AND user_id = ?2)",
        params![fmu_id, user_id],
        |r| r.get(0),
    )?;
    if owned {
        return Ok(Owned::AlreadyOwned);
    }
    let used = storage_used(&tx, user_id)?;
    let adding: i64 = tx.query_row(
        "SELECT COALESCE(stored_bytes, size_bytes) FROM fmus WHERE id = ?1",
        [fmu_id],
        |r| r.get(0),
    )?;
    if used.saturating_add(adding) > quota {
        return Ok(Owned::OverQuota { used, adding });
    }
    tx.execute(
        "INSERT INTO fmu_owners (fmu_id, user_id, file_name, uploaded_at) VALUES (?1, ?2, ?3, ?4)",
        params![fmu_id, user_id, file_name, now],
    )?;
    tx.commit()?;
    Ok(Owned::Added)
}

/// Bytes the user's uploads and saved FMU states take on disk: what counts against their
/// storage quota.
fn storage_used(conn: &Connection, user_id: &UserId) -> StoreResult<i64> {
    Ok(uploads_used(conn, user_id)?.saturating_add(super::states::states_used(conn, user_id)?))
}

/// [`storage_used`] inside another table's transaction.
pub(super) fn storage_used_tx(conn: &Connection, user_id: &UserId) -> StoreResult<i64> {
    storage_used(conn, user_id)
}

/// Bytes the user's uploads take on disk (each FMU they uploaded counts in full for them,
/// even when someone else uploaded the same bytes).
fn uploads_used(conn: &Connection, user_id: &UserId) -> StoreResult<i64> {
    conn.query_row(
        "SELECT COALESCE(SUM(COALESCE(f.stored_bytes, f.size_bytes)), 0)
         FROM fmu_owners o JOIN fmus f ON f.id = o.fmu_id WHERE o.user_id = ?1",
        [user_id],
        |r| r.get(0),
    )
}

/// Forgets an FMU nobody owns (an upload refused after it was extracted). Returns whether it
/// was removed, so the caller removes its files only then.
fn remove_if_unowned(conn: &Connection, fmu_id: &FmuId) -> StoreResult<bool> {
    Ok(conn.execute(
        "DELETE FROM fmus WHERE id = ?1 AND library_id IS NULL
           AND NOT EXISTS(SELECT 1 FROM fmu_owners WHERE fmu_id = ?1)",
        [fmu_id],
    )? == 1)
}

/// The FMU if the user may see it: a library model or one of their uploads.
fn visible(conn: &Connection, user_id: &UserId, id: &FmuId) -> StoreResult<Option<FmuRow>> {
    let sql =
        format!("{SELECT} WHERE f.id = ?2 AND (f.library_id IS NOT NULL OR o.user_id IS NOT NULL)");
    conn.query_row(&sql, params![user_id, id], from_row)
        .optional()
}

/// A library model by its library id (`lib:…`).
fn by_library_id(
    conn: &Connection,
    user_id: &UserId,
    library_id: &str,
) -> StoreResult<Option<FmuRow>> {
    let sql = format!("{SELECT} WHERE f.library_id = ?2");
    conn.query_row(&sql, params![user_id, library_id], from_row)
        .optional()
}

/// Library models and the user's uploads, library first, then by name. `query` filters
/// model names (case-insensitive substring).
fn list(conn: &Connection, user_id: &UserId, query: Option<&str>) -> StoreResult<Vec<FmuRow>> {
    let sql = format!(
        "{SELECT} WHERE (f.library_id IS NOT NULL OR o.user_id IS NOT NULL)
           AND (CAST(?2 AS TEXT) IS NULL OR instr(lower(f.model_name), lower(CAST(?2 AS TEXT))) > 0)
         ORDER BY f.library_id IS NULL, f.model_name, f.fmi_version DESC, f.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user_id, query], from_row)?;
    rows.collect::<Result<_, _>>()
}

/// Removes the user's upload. Returns whether anyone (or the library) still uses the FMU.
fn remove_owner(
    conn: &mut Connection,
    fmu_id: &FmuId,
    user_id: &UserId,
) -> StoreResult<Option<bool>> {
    let tx = write_tx(conn)?;
    let removed = tx.execute(
        "DELETE FROM fmu_owners WHERE fmu_id = ?1 AND user_id = ?2",
        params![fmu_id, user_id],
    )?;
    if removed == 0 {
        return Ok(None);
    }
    let still_used: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM fmu_owners WHERE fmu_id = ?1)
             OR EXISTS(SELECT 1 FROM fmus WHERE id = ?1 AND library_id IS NOT NULL)",
        [fmu_id],
        |r| r.get(0),
    )?;
    if !still_used {
        tx.execute("DELETE FROM fmus WHERE id = ?1", [fmu_id])?;
    }
    tx.commit()?;
    Ok(Some(still_used))
}

/// What recording an upload did, and the FMU as its uploader now sees it.
#[derive(Clone, Debug)]
pub struct Upload {
    pub owned: Owned,
    /// `None` if the FMU is not visible to the user (over quota, and not a library model).
    pub row: Option<FmuRow>,
}

impl Store {
    /// Whether an FMU with this id (the SHA-256 of its file) is recorded.
    pub async fn has_fmu(&self, id: &FmuId) -> StoreResult<bool> {
        let id = id.clone();
        self.run(move |conn| exists(conn, &id)).await
    }

    /// The stored description (JSON of `fmi::describe::ModelInfo`) of a known FMU, whoever
    /// owns it: what a second upload of the same bytes is checked against.
    pub async fn fmu_info(&self, id: &FmuId) -> StoreResult<Option<String>> {
        let id = id.clone();
        self.run(move |conn| {
            conn.query_row("SELECT info FROM fmus WHERE id = ?1", [id], |r| r.get(0))
                .optional()
        })
        .await
    }

    /// [`Store::has_fmu`] for start-up code that runs before the server serves.
    pub fn has_fmu_blocking(&self, id: &FmuId) -> StoreResult<bool> {
        exists(&self.conn()?, id)
    }

    /// Replaces an FMU's stored description (JSON of `fmi::describe::ModelInfo`), when it was
    /// described again from its files.
    pub async fn update_fmu_info(&self, id: &FmuId, info: String) -> StoreResult<()> {
        let id = id.clone();
        self.run(move |conn| {
            conn.execute("UPDATE fmus SET info = ?1 WHERE id = ?2", params![info, id])?;
            Ok(())
        })
        .await
    }

    /// Records an uploaded FMU's metadata (its files are in place); a known id is left as is.
    pub async fn add_fmu(&self, fmu: NewFmu) -> StoreResult<()> {
        self.run(move |conn| insert(conn, &fmu, None)).await
    }

    /// Records a built-in library model under `library_id`, taking that id off the FMU that
    /// had it (a rebuilt model replaces the old one; the old row stays for the users who
    /// uploaded those bytes themselves). One transaction. Blocking: start-up code only.
    pub fn add_library_model_blocking(&self, fmu: NewFmu, library_id: &str) -> StoreResult<()> {
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        retire_library_id(&tx, library_id)?;
        insert(&tx, &fmu, Some(library_id))?;
        tx.commit()?;
        Ok(())
    }

    /// Records that the user uploaded the (recorded) FMU, if it fits in their storage quota
    /// of `quota` bytes, and returns it as they now see it.
    pub async fn add_upload(
        &self,
        fmu_id: &FmuId,
        user_id: &UserId,
        file_name: &str,
        now: i64,
        quota: i64,
    ) -> StoreResult<Upload> {
        let (fmu, user, name) = (fmu_id.clone(), user_id.clone(), file_name.to_string());
        self.run(move |conn| {
            let owned = add_owner(conn, &fmu, &user, &name, now, quota)?;
            Ok(Upload {
                owned,
                row: visible(conn, &user, &fmu)?,
            })
        })
        .await
    }

    /// Forgets an FMU nobody owns (an upload refused after it was extracted). Returns whether
    /// it was forgotten, so the caller removes its files only then.
    pub async fn forget_unowned_fmu(&self, fmu_id: &FmuId) -> StoreResult<bool> {
        let id = fmu_id.clone();
        self.run(move |conn| remove_if_unowned(conn, &id)).await
    }

    /// Bytes the user's uploads (each FMU they uploaded counts in full for them, even when
    /// someone else uploaded the same bytes) and saved FMU states take: what counts against
    /// their quota.
    pub async fn storage_used(&self, user_id: &UserId) -> StoreResult<i64> {
        let id = user_id.clone();
        self.run(move |conn| storage_used(conn, &id)).await
    }

    /// The FMU with this id if the user may see it: a library model or one of their uploads.
    pub async fn visible_fmu(
        &self,
        user_id: &UserId,
        fmu_id: &FmuId,
    ) -> StoreResult<Option<FmuRow>> {
        let (user, id) = (user_id.clone(), fmu_id.clone());
        self.run(move |conn| visible(conn, &user, &id)).await
    }

    /// A library model by its library id (`lib:…`), as the user sees it.
    pub async fn library_model(
        &self,
        user_id: &UserId,
        library_id: &str,
    ) -> StoreResult<Option<FmuRow>> {
        let (user, id) = (user_id.clone(), library_id.to_string());
        self.run(move |conn| by_library_id(conn, &user, &id)).await
    }

    /// Library models and the user's uploads, library first, then by name. `query` filters
    /// model names (case-insensitive substring).
    pub async fn fmus_for(
        &self,
        user_id: &UserId,
        query: Option<&str>,
    ) -> StoreResult<Vec<FmuRow>> {
        let (user, query) = (user_id.clone(), query.map(str::to_string));
        self.run(move |conn| list(conn, &user, query.as_deref()))
            .await
    }

    /// Removes the user's upload, and the FMU's record once nobody (nor the library) uses it.
    /// `None`: the user had not uploaded it; else whether the FMU is still used.
    pub async fn remove_upload(
        &self,
        fmu_id: &FmuId,
        user_id: &UserId,
    ) -> StoreResult<Option<bool>> {
        let (fmu, user) = (fmu_id.clone(), user_id.clone());
        self.run(move |conn| remove_owner(conn, &fmu, &user)).await
    }
}
