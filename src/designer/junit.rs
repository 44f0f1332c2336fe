//! `hotline test --junit FILE`: the run as JUnit XML, the report format CI servers
//! (Jenkins, GitLab, GitHub's test reporters) read. A test file is a `testsuite`, a test
//! a `testcase`; a failing test carries its side-by-side diff, a broken test (or one
//! whose flow does not load) is an `error`.
use super::runner::{FileRun, Totals, Verdict};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use std::io;
use std::time::Duration;

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// XML 1.0 has no way to write most control characters, escaped or not.
fn xml_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .collect()
}

/// The first line of a longer text: a `message` attribute, shown in one line by CI.
fn first_line(s: &str) -> String {
    xml_text(s.lines().next().unwrap_or_default())
}

fn diagnostics(list: &[crate::flow::Diagnostic]) -> String {
    list.iter().map(|d| format!("{d}\n")).collect()
}

pub fn render(runs: &[FileRun]) -> io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let all = Totals::of(runs);
    let time: Duration = runs.iter().map(|r| r.time).sum();
    let tests = (all.passed + all.failed + all.broken).to_string();
    let (failures, errors) = (all.failed.to_string(), all.broken.to_string());
    w.create_element("testsuites")
        .with_attribute(("name", "hotline flow tests"))
        .with_attribute(("tests", tests.as_str()))
        .with_attribute(("failures", failures.as_str()))
        .with_attribute(("errors", errors.as_str()))
        .with_attribute(("time", secs(time).as_str()))
        .write_inner_content(|w| {
            for r in runs {
                suite(w, r)?;
            }
            Ok(())
        })?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

fn suite(w: &mut Writer<Vec<u8>>, r: &FileRun) -> io::Result<()> {
    let t = Totals::of(std::slice::from_ref(r));
    let file = xml_text(&r.file.display().to_string());
    let tests = (t.passed + t.failed + t.broken).to_string();
    let (failures, errors) = (t.failed.to_string(), t.broken.to_string());
    w.create_element("testsuite")
        .with_attribute(("name", file.as_str()))
        .with_attribute(("tests", tests.as_str()))
        .with_attribute(("failures", failures.as_str()))
        .with_attribute(("errors", errors.as_str()))
        .with_attribute(("skipped", "0"))
        .with_attribute(("time", secs(r.time).as_str()))
        .write_inner_content(|w| {
            if let Some(flow) = &r.flow {
                let flow = xml_text(&flow.file.display().to_string());
                w.create_element("properties").write_inner_content(|w| {
                    w.create_element("property")
                        .with_attribute(("name", "flow"))
                        .with_attribute(("value", flow.as_str()))
                        .write_empty()?;
                    Ok(())
                })?;
            }
            if !r.errors.is_empty() {
                // The file could not be read: one case says why, so CI shows it.
                let text = diagnostics(&r.errors);
                w.create_element("testcase")
                    .with_attribute(("name", "(the test file)"))
                    .with_attribute(("classname", file.as_str()))
                    .with_attribute(("file", file.as_str()))
                    .with_attribute(("time", "0.000"))
                    .write_inner_content(|w| {
                        w.create_element("error")
                            .with_attribute(("type", "unreadable"))
                            .with_attribute(("message", first_line(&text).as_str()))
                            .write_text_content(BytesText::new(&xml_text(&text)))?;
                        Ok(())
                    })?;
            }
            for c in &r.cases {
                let line = c.line.to_string();
                let name = xml_text(&c.name);
                let el = w
                    .create_element("testcase")
                    .with_attribute(("name", name.as_str()))
                    .with_attribute(("classname", file.as_str()))
                    .with_attribute(("file", file.as_str()))
                    .with_attribute(("line", line.as_str()))
                    .with_attribute(("time", secs(c.time).as_str()));
                match &c.verdict {
                    Verdict::Passed => {
                        el.write_empty()?;
                    }
                    Verdict::Failed(why) => {
                        el.write_inner_content(|w| {
                            w.create_element("failure")
                                .with_attribute(("type", "mismatch"))
                                .with_attribute(("message", first_line(why).as_str()))
                                .write_text_content(BytesText::new(&xml_text(why)))?;
                            Ok(())
                        })?;
                    }
                    Verdict::Broken(errors) => {
                        let text = diagnostics(errors);
                        el.write_inner_content(|w| {
                            w.create_element("error")
                                .with_attribute(("type", "broken"))
                                .with_attribute(("message", first_line(&text).as_str()))
                                .write_text_content(BytesText::new(&xml_text(&text)))?;
                            Ok(())
                        })?;
                    }
                }
            }
            Ok(())
        })?;
    Ok(())
}
