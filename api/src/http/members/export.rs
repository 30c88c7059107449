//! Members as CSV (RFC 4180), streamed: `GET /orgs/{org}/members.csv`, or the
//! members list with `Accept: text/csv`. Rows are written batch by batch, so
//! memory stays flat however large the org.

use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use orgsync_domain::service::{ExportRow, MemberExport};

use super::MembersQuery;
use crate::http::extract::OrgCall;
use crate::http::problem::{Answer, ApiError};
use crate::http::routes::Routes;
use crate::http::views::timestamp;

/// Members read per round trip while exporting.
const BATCH: u64 = 5_000;

const FIXED_COLUMNS: [&str; 10] = [
    "member_id",
    "email",
    "name",
    "role",
    "seat_tier",
    "spend_limit",
    "status",
    "source",
    "directory_user_id",
    "groups",
];

pub fn table() -> Routes {
    Routes::new("/api/v1", "members").add(
        Method::GET,
        "/orgs/{org}/members.csv",
        "Export members as CSV (streamed)",
        export,
    )
}

/// Whether a request for the members list asks for CSV.
pub fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

pub async fn export(
    OrgCall { state, caller, org }: OrgCall,
    query: web::Query<MembersQuery>,
) -> Answer {
    let export = state.members.export(&caller, org, query.filter()?).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"members-{}.csv\"", org.0),
        ))
        .streaming(rows(export)))
}

fn csv_bytes(
    write: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>,
) -> Result<Bytes, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    write(&mut writer).map_err(|e| ApiError::Domain(orgsync_domain::Error::Internal(e.into())))?;
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| ApiError::Domain(orgsync_domain::Error::Internal(anyhow::anyhow!("{e}"))))
}

fn record(row: &ExportRow, attribute_keys: &[String]) -> Vec<String> {
    let (member, groups) = row;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = vec![
        member.id.0.to_string(),
        member.email.clone(),
        member.name.clone().unwrap_or_default(),
        member.role.as_str().to_owned(),
        member
            .seat_tier
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        member
            .spend_limit
            .as_ref()
            .map(|l| format!("{} {}", l.amount_minor(), l.currency()))
            .unwrap_or_default(),
        member.status.as_str().to_owned(),
        member.source.as_str().to_owned(),
        member
            .directory_user_id
            .map(|u| u.to_string())
            .unwrap_or_default(),
        groups.join("; "),
    ];
    out.extend(attribute_keys.iter().map(|key| {
        member
            .public_metadata
            .get(key)
            .map(text)
            .unwrap_or_default()
    }));
    out.push(timestamp(member.created_at));
    out.push(timestamp(member.updated_at));
    out.into_iter().map(defused).collect()
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or
/// carriage return first; OWASP "CSV injection") gets a leading `'`, so it
/// reads as the text the IdP sent. Names and attributes come from outside.
fn defused(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn rows(mut export: MemberExport) -> impl futures::Stream<Item = Result<Bytes, ApiError>> {
    let mut header: Vec<String> = FIXED_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    header.extend(
        export
            .attribute_keys
            .iter()
            .map(|k| format!("attribute:{k}")),
    );
    header.extend(["created_at".to_owned(), "updated_at".to_owned()]);
    let keys = export.attribute_keys.clone();
    // The next batch is read from the database while this one is written
    // out: one batch in flight, one waiting, so memory stays two batches. A
    // client that goes away drops the receiver, and the reader stops.
    let (batches, mut received) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let batch = export.next_batch(BATCH).await;
            let last = !matches!(batch, Ok(Some(_)));
            if matches!(batch, Ok(None)) || batches.send(batch).await.is_err() || last {
                break;
            }
        }
    });
    let body = futures::stream::poll_fn(move |cx| received.poll_recv(cx)).map(move |batch| {
        match batch {
            Ok(Some(batch)) => csv_bytes(|w| {
                for row in &batch {
                    w.write_record(record(row, &keys))?;
                }
                Ok(())
            }),
            Ok(None) => Ok(Bytes::new()),
            Err(e) => {
                // The status line is gone; a broken body is the only honest signal left.
                tracing::error!(error = %e, "member export failed");
                Err(ApiError::Domain(e))
            }
        }
    });
    futures::stream::once(async move { csv_bytes(|w| w.write_record(&header)) }).chain(body)
}

#[cfg(test)]
mod tests {
    use super::defused;

    #[test]
    fn formula_cells_are_defused_and_text_is_kept() {
        for formula in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(defused(formula.to_owned()), format!("'{formula}"));
        }
        for text in ["Ada Lovelace", "ada@example.com", "", "1-2", "a=b"] {
            assert_eq!(defused(text.to_owned()), text);
        }
    }
}
