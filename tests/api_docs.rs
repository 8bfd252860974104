//! docs/api.md is the API's contract for people: every JSON example in it
//! is tagged with the route it shows (`<!-- answer: GET /api/status -->` on
//! the line before the fence, `<!-- answer: error -->` for errors) and must
//! be exactly an answer of that route's type, and every route that answers
//! JSON must have one.

use dashvault::http::answers::{json, Answer, ErrorAnswer};
use dashvault::http::routes::ROUTES;

const DOC: &str = "docs/api.md";
const TAG_START: &str = "<!-- answer: ";
const TAG_END: &str = " -->";

struct Example {
    /// `GET /api/status`, or `error`.
    answer_of: String,
    /// Line of the opening fence, from 1.
    line: usize,
    json: String,
}

/// Every JSON block of the doc, and what is wrong with the tags: a block
/// without a tag is an error, so no example escapes the check.
fn examples() -> (Vec<Example>, Vec<String>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with("```json") {
            let tag = (i > 0)
                .then(|| lines[i - 1].trim())
                .and_then(|t| t.strip_prefix(TAG_START)?.strip_suffix(TAG_END));
            if tag.is_none() {
                problems.push(format!(
                    "{DOC}:{}: a JSON example without `{TAG_START}<METHOD> <path>{TAG_END}` on the line before",
                    i + 1
                ));
            }
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .unwrap_or_else(|| panic!("{DOC}:{}: the fence is never closed", i + 1));
            if let Some(tag) = tag {
                found.push(Example {
                    answer_of: tag.trim().to_string(),
                    line: i + 1,
                    json: lines[i + 1..end].join("\n"),
                });
            }
            i = end;
        } else if line.starts_with(TAG_START)
            && !lines
                .get(i + 1)
                .is_some_and(|l| l.trim().starts_with("```json"))
        {
            problems.push(format!(
                "{DOC}:{}: a tag not followed by a ```json fence",
                i + 1
            ));
        }
        i += 1;
    }
    (found, problems)
}

/// The answer a tag names.
fn answer_of(tag: &str) -> Result<Answer, String> {
    if tag == "error" {
        return Ok(json::<ErrorAnswer>());
    }
    let (method, path) = tag
        .split_once(' ')
        .ok_or_else(|| format!("`{tag}` is not `<METHOD> <path>` or `error`"))?;
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.answer)
        .ok_or_else(|| {
            format!("no route {method} {path} (paths as in the route table, e.g. /api/cameras/*)")
        })
}

#[test]
fn every_example_is_exactly_an_answer_of_its_route() {
    let (examples, mut problems) = examples();
    for ex in examples {
        let at = format!("{DOC}:{} ({})", ex.line, ex.answer_of);
        let value: serde_json::Value = match serde_json::from_str(&ex.json) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{at}: not JSON: {e}"));
                continue;
            }
        };
        match answer_of(&ex.answer_of) {
            Err(e) => problems.push(format!("{at}: {e}")),
            Ok(answer) => {
                if let Err(found) = answer.check(&value) {
                    problems.extend(found.into_iter().map(|p| format!("{at}: {p}")));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_route_that_answers_json_has_an_example() {
    let shown: Vec<String> = examples().0.into_iter().map(|e| e.answer_of).collect();
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|r| matches!(r.answer, Answer::Json(_)))
        .map(|r| format!("{} {}", r.method, r.path))
        .filter(|tag| !shown.contains(tag))
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC} shows no answer of: {}",
        missing.join(", ")
    );
    assert!(
        shown.iter().any(|t| t == "error"),
        "{DOC} shows no error answer"
    );
}
