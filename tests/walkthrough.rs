//! The README's walk-through of a new flow, run as written: its YAML blocks are written
//! to the files their first lines name, in a copy of the repository, and its commands
//! are run in order with the `hotline` under test first on the PATH.
use std::path::Path;
use std::process::Command;

const SECTION: &str = "## A new flow, start to finish";

/// The fenced blocks of the walk-through: (language, text).
fn blocks(readme: &str) -> Vec<(String, String)> {
    let start = readme
        .find(SECTION)
        .expect("the README has the walk-through");
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut out = Vec::new();
    let mut lines = section.lines();
    while let Some(l) = lines.next() {
        if let Some(lang) = l.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            out.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_readme_walk_through_runs_as_written() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let blocks = blocks(&readme);
    assert!(blocks.len() >= 6, "{} blocks", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["flows", "prompts", "data", "scripts"] {
        copy_dir(Path::new(d), &root.join(d));
    }
    let mut commands = Vec::new();
    for (lang, body) in &blocks {
        match lang.as_str() {
            "yaml" => {
                let first = body.lines().next().unwrap_or_default();
                let name = first
                    .strip_prefix("# ")
                    .unwrap_or_else(|| panic!("a YAML block names its file first: {first}"));
                let (path, append) = match name.strip_suffix(" (add to the end)") {
                    Some(p) => (p, true),
                    None => (name, false),
                };
                let path = root.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                if append {
                    let mut text = std::fs::read_to_string(&path).unwrap();
                    text.push_str(body.split_once('\n').unwrap().1);
                    std::fs::write(&path, text).unwrap();
                } else {
                    std::fs::write(&path, body).unwrap();
                }
            }
            "sh" => commands.extend(
                body.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                    .filter(|l| !l.is_empty()),
            ),
            other => panic!("unexpected block ```{other} in the walk-through"),
        }
    }
    assert_eq!(commands.len(), 3, "{commands:?}");
    let bin = Path::new(env!("CARGO_BIN_EXE_hotline")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for c in &commands {
        let out = Command::new("bash")
            .arg("-c")
            .arg(c)
            .current_dir(root)
            .env("PATH", &path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "`{c}` failed:\n{text}");
        outputs.push(text);
    }
    assert!(outputs[0].contains("recorded"), "{}", outputs[0]);
    assert!(outputs[1].starts_with("ok: 4 flow(s)"), "{}", outputs[1]);
    assert!(outputs[2].contains("3 passed, 0 failed"), "{}", outputs[2]);
    assert!(outputs[2].contains("elevator"), "{}", outputs[2]);
    // The mistakes the README says check would catch, caught.
    for (file, from, to, needle) in [
        (
            "flows/elevator.yaml",
            "{info.next_service}",
            "{info.next_servce}",
            "did you mean 'info.next_service'",
        ),
        (
            "flows/elevator.yaml",
            "start: ask_lift",
            "start: ask",
            "did you mean 'ask_lift'",
        ),
        (
            "flows/elevator.yaml",
            "    group: lift                      # the third",
            "    # the third",
            "'not_found 3:' can never run",
        ),
        (
            "data/lifts.yaml",
            "2026-12-06",
            "06/12/2026",
            "cannot be spoken as date",
        ),
    ] {
        let p = root.join(file);
        let good = std::fs::read_to_string(&p).unwrap();
        assert!(good.contains(from), "{from}");
        std::fs::write(&p, good.replace(from, to)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg("check")
            .current_dir(root)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() && text.contains(needle),
            "{to}: {text}"
        );
        std::fs::write(&p, good).unwrap();
    }
}
