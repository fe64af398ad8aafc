//! The README and the docs stay true to the code they describe:
//!
//! - every link points to a file inside the repository (no dangling link,
//!   nothing outside it);
//! - every `<!-- snippet: FILE -->` block of a guide is, line for line, in
//!   that file (the examples, which `.ci/run` runs and checks);
//! - every `foundation ...` command in a shell block parses with this
//!   binary (subcommand and flags), every `--example` exists, and every
//!   `FOUNDATION_*` variable set there is a configuration variable;
//! - every configuration key and metric a guide names exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use foundation::config::KEYS;

const BIN: &str = env!("CARGO_BIN_EXE_foundation");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut out = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/ is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn guides() -> Vec<PathBuf> {
    documents()
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("docs/guides")))
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn name(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Fenced blocks: (info string, lines, the line before the fence).
fn blocks(text: &str) -> Vec<(String, Vec<String>, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<String>, String)> = None;
    let mut previous = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => out.push(block),
                None => current = Some((info.trim().to_owned(), Vec::new(), previous.clone())),
            }
        } else if let Some((_, lines, _)) = current.as_mut() {
            lines.push(line.to_owned());
        }
        if !line.trim().is_empty() {
            previous = line.trim().to_owned();
        }
    }
    out
}

#[test]
fn every_link_in_the_readme_and_docs_points_to_a_file_in_the_repository() {
    let root = root();
    let mut checked = 0;
    let mut bad = Vec::new();
    for doc in documents() {
        let text = prose(&read(&doc));
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].trim();
            rest = &rest[end..];
            if target.starts_with('#') || target.is_empty() {
                continue;
            }
            checked += 1;
            if target.contains("://") || target.starts_with('/') || target.starts_with("mailto:") {
                bad.push(format!("{}: {target} leaves the repository", name(&doc)));
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            let file = file.split_whitespace().next().unwrap_or(file);
            let path = doc.parent().expect("a directory").join(file);
            match path.canonicalize() {
                Ok(p) if p.starts_with(&root) => {}
                Ok(_) => bad.push(format!(
                    "{}: {target} is outside the repository",
                    name(&doc)
                )),
                Err(_) => bad.push(format!("{}: {target} does not exist", name(&doc))),
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} links found: is the parser broken?"
    );
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn every_repository_path_the_readme_and_docs_name_exists() {
    let root = root();
    let tops = ["docs/", "examples/", "crates/", "deploy/", "fuzz/", ".ci/"];
    let mut checked = 0;
    let mut missing = Vec::new();
    for doc in documents() {
        for word in code_words(&read(&doc)) {
            let path = word.trim_end_matches([',', '.', ':']);
            let plain = path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
            if !plain || !tops.iter().any(|t| path.starts_with(t)) {
                continue;
            }
            checked += 1;
            if !root.join(path).exists() {
                missing.push(format!("{}: `{path}`", name(&doc)));
            }
        }
    }
    assert!(checked >= 20, "only {checked} paths found");
    assert!(
        missing.is_empty(),
        "named but missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_guide_snippet_is_the_code_it_names() {
    let root = root();
    let mut snippets = 0;
    for guide in guides() {
        for (_, lines, before) in blocks(&read(&guide)) {
            let Some(file) = before
                .strip_prefix("<!-- snippet:")
                .and_then(|s| s.strip_suffix("-->"))
            else {
                continue;
            };
            let source = read(&root.join(file.trim()));
            let source: Vec<&str> = source.lines().map(str::trim_end).collect();
            let want: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
            let found = source.windows(want.len()).any(|w| w == want.as_slice());
            assert!(
                found,
                "{}: a snippet is not in {file} as written:\n{}",
                name(&guide),
                want.join("\n")
            );
            snippets += 1;
        }
    }
    assert!(snippets >= 8, "only {snippets} snippets found");
}

/// Shell commands of the README and the guides, continuation lines joined.
fn shell_commands() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for doc in documents()
        .into_iter()
        .filter(|d| d.ends_with("README.md") || guides().contains(d))
    {
        for (info, lines, _) in blocks(&read(&doc)) {
            if info != "sh" {
                continue;
            }
            let mut command = String::new();
            for line in lines {
                let line = line.split(" #").next().unwrap_or_default().trim_end();
                match line.strip_suffix('\\') {
                    Some(head) => command.push_str(head),
                    None => {
                        command.push_str(line);
                        if !command.trim().is_empty() {
                            out.push((name(&doc), command.trim().to_owned()));
                        }
                        command.clear();
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_documented_command_parses_and_every_variable_exists() {
    let variables: BTreeSet<&str> = KEYS
        .iter()
        .filter_map(|k| k.env)
        .chain(["FOUNDATION_CONFIG"])
        .collect();
    let examples = read(&root().join("examples/Cargo.toml"));
    let (mut cli, mut example_runs) = (0, 0);
    for (doc, command) in shell_commands() {
        let mut words: Vec<&str> = command.split_whitespace().collect();
        // Leading VAR=value assignments.
        while let Some((var, _)) = words.first().and_then(|w| w.split_once('=')) {
            if var.starts_with("FOUNDATION_") {
                assert!(
                    variables.contains(var),
                    "{doc}: `{command}` sets unknown {var}"
                );
            }
            words.remove(0);
        }
        let args: Option<Vec<&str>> = match words.as_slice() {
            ["foundation", rest @ ..] => Some(rest.to_vec()),
            ["cargo", "run", rest @ ..] if rest.contains(&"foundation-cli") => rest
                .iter()
                .position(|w| *w == "--")
                .map(|i| rest[i + 1..].to_vec()),
            ["cargo", "run", rest @ ..] => {
                if let Some(i) = rest.iter().position(|w| *w == "--example") {
                    let example = rest.get(i + 1).expect("an example name");
                    assert!(
                        examples.contains(&format!("name = \"{example}\""))
                            && root().join(format!("examples/{example}.rs")).is_file(),
                        "{doc}: `{command}` runs no such example"
                    );
                    example_runs += 1;
                }
                None
            }
            _ => None,
        };
        let Some(args) = args else { continue };
        let out = Command::new(BIN)
            .args(&args)
            .arg("--help")
            .output()
            .expect("the binary runs");
        assert!(
            out.status.success(),
            "{doc}: `{command}` does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cli += 1;
    }
    assert!(cli >= 10, "only {cli} foundation commands found");
    assert!(example_runs >= 2, "only {example_runs} example runs found");
}

/// Backticked words of a guide's prose and tables.
fn code_words(text: &str) -> Vec<String> {
    prose(text)
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_configuration_key_and_metric_a_guide_names_exists() {
    let keys: BTreeSet<&str> = KEYS.iter().map(|k| k.key).collect();
    let sections: BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| k.split_once('.'))
        .map(|(s, _)| s)
        .collect();
    let files = [
        "md", "rs", "toml", "yaml", "json", "py", "png", "pem", "crl", "coord",
    ];
    let src = root().join("crates/foundation/src");
    let mut sources = String::new();
    let mut http = String::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = read(&path);
                if path.starts_with(src.join("http")) {
                    http.push_str(&text);
                }
                sources.push_str(&text);
            }
        }
    }
    let (mut key_count, mut metric_count) = (0, 0);
    for guide in guides() {
        let text = read(&guide);
        for word in code_words(&text) {
            let word = word.split_whitespace().next().unwrap_or_default();
            let word = word.split(" =").next().unwrap_or(word);
            if let Some((section, rest)) = word.split_once('.') {
                let plain = rest.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                if sections.contains(section) && plain && !files.contains(&rest) {
                    assert!(
                        keys.contains(word),
                        "{}: no configuration key `{word}`",
                        name(&guide)
                    );
                    key_count += 1;
                }
            }
            if word.starts_with("foundation_") {
                // `foundation_cache_*` names a family.
                let metric = word.split(['{', '*']).next().unwrap_or(word);
                assert!(
                    sources.contains(&format!("\"{metric}")),
                    "{}: no metric `{metric}` in the code",
                    name(&guide)
                );
                metric_count += 1;
            }
        }
        // Metrics the runbook says are on /metrics are rendered there.
        if guide.ends_with("runbook.md") {
            for line in prose(&text)
                .lines()
                .filter(|l| l.starts_with("| `foundation_"))
            {
                let cell = line.split('|').nth(1).unwrap_or_default();
                if cell.contains('†') {
                    continue;
                }
                for metric in code_words(cell) {
                    let metric = metric.split('{').next().unwrap_or_default();
                    assert!(
                        http.contains(&format!("\"{metric}")),
                        "runbook: `{metric}` is not rendered by /metrics; mark it †"
                    );
                }
            }
        }
    }
    assert!(key_count >= 20, "only {key_count} keys found");
    assert!(metric_count >= 20, "only {metric_count} metrics found");
}
