//! The `fmus` and `fmu_owners` tables: the registry's metadata.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbResult;

#[derive(Clone, Debug)]
pub struct FmuRow {
    pub id: String,
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

fn from_row(r: &Row<'_>) -> rusqlite::Result<FmuRow> {
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

pub fn exists(conn: &Connection, id: &str) -> DbResult<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM fmus WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Inserts an FMU's metadata unless the id is known (same bytes). `library_id` makes it a
/// library model.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &Connection,
    id: &str,
    library_id: Option<&str>,
    model_name: &str,
    fmi_version: &str,
    size_bytes: i64,
    info: &str,
    now: i64,
) -> DbResult<()> {
    conn.execute(
        "INSERT INTO fmus (id, library_id, model_name, fmi_version, size_bytes, info, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
        params![
            id,
            library_id,
            model_name,
            fmi_version,
            size_bytes,
            info,
            now
        ],
    )?;
    Ok(())
}

/// Takes a library id off the FMU that had it (a rebuilt library model replaces it). The old
/// row stays for the users who uploaded those bytes themselves.
pub fn retire_library_id(conn: &Connection, library_id: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE fmus SET library_id = NULL WHERE library_id = ?1",
        [library_id],
    )?;
    Ok(())
}

/// Records that the user uploaded the FMU; uploading again keeps the first record.
pub fn add_owner(
    conn: &Connection,
    fmu_id: &str,
    user_id: &str,
    file_name: &str,
    now: i64,
) -> DbResult<bool> {
    let added = conn.execute(
        "INSERT INTO fmu_owners (fmu_id, user_id, file_name, uploaded_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(fmu_id, user_id) DO NOTHING",
        params![fmu_id, user_id, file_name, now],
    )?;
    Ok(added == 1)
}

/// The FMU if the user may see it: a library model or one of their uploads.
pub fn visible(conn: &Connection, user_id: &str, id: &str) -> DbResult<Option<FmuRow>> {
    let sql =
        format!("{SELECT} WHERE f.id = ?2 AND (f.library_id IS NOT NULL OR o.user_id IS NOT NULL)");
    Ok(conn
        .query_row(&sql, params![user_id, id], from_row)
        .optional()?)
}

/// A library model by its library id (`lib:…`).
pub fn by_library_id(
    conn: &Connection,
    user_id: &str,
    library_id: &str,
) -> DbResult<Option<FmuRow>> {
    let sql = format!("{SELECT} WHERE f.library_id = ?2");
    Ok(conn
        .query_row(&sql, params![user_id, library_id], from_row)
        .optional()?)
}

/// Library models and the user's uploads, library first, then by name. `query` filters
/// model names (case-insensitive substring).
pub fn list(conn: &Connection, user_id: &str, query: Option<&str>) -> DbResult<Vec<FmuRow>> {
    let sql = format!(
        "{SELECT} WHERE (f.library_id IS NOT NULL OR o.user_id IS NOT NULL)
           AND (?2 IS NULL OR instr(lower(f.model_name), lower(?2)) > 0)
         ORDER BY f.library_id IS NULL, f.model_name, f.fmi_version DESC, f.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user_id, query], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes the user's upload. Returns whether anyone (or the library) still uses the FMU.
pub fn remove_owner(conn: &Connection, fmu_id: &str, user_id: &str) -> DbResult<Option<bool>> {
    let removed = conn.execute(
        "DELETE FROM fmu_owners WHERE fmu_id = ?1 AND user_id = ?2",
        params![fmu_id, user_id],
    )?;
    if removed == 0 {
        return Ok(None);
    }
    let still_used: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM fmu_owners WHERE fmu_id = ?1)
             OR EXISTS(SELECT 1 FROM fmus WHERE id = ?1 AND library_id IS NOT NULL)",
        [fmu_id],
        |r| r.get(0),
    )?;
    if !still_used {
        conn.execute("DELETE FROM fmus WHERE id = ?1", [fmu_id])?;
    }
    Ok(Some(still_used))
}
