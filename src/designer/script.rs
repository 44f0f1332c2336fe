//! What a simulated caller does, one step a line: the same words in flow tests,
//! `hotline simulate` and its `--script` files.
use crate::flow::expr::{fmt_duration, parse_duration};
use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Keys pressed one after another (`press 1`, `press 100234#`).
    Press(String),
    /// The caller says nothing for this long.
    Silence(Duration),
    /// The caller speaks at normal volume for this long.
    Voice(Duration),
    /// The caller speaks, too quietly to be understood (P-QUIET).
    Quiet,
    /// The line is too noisy (P-NOISE).
    Noise,
    Hangup,
    /// The next lookup fails (P-FAULT).
    LookupFails,
    /// The next lookup takes this long (P-WAIT).
    LookupSlow(Duration),
    /// The next ticket cannot be stored (P-FAULT).
    TicketFails,
    /// The next transfer fails.
    TransferFails,
}

impl Action {
    /// Back-end conditions take effect at once; caller actions wait for the hotline to
    /// listen, as a real caller waits for the question before answering.
    pub fn is_condition(&self) -> bool {
        matches!(
            self,
            Action::LookupFails
                | Action::LookupSlow(_)
                | Action::TicketFails
                | Action::TransferFails
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// `at 2s: press 1`: at this time since the answer, whether or not a prompt plays.
    pub at: Option<Duration>,
    pub action: Action,
}

/// Time between two key presses of one `press`.
pub const KEY_GAP: Duration = Duration::from_millis(250);
pub const DEFAULT_VOICE: Duration = Duration::from_millis(1500);

pub const HELP: &str = "\
caller steps, one a line:
  press KEYS         press keys, e.g. press 1, press 100234#   (a bare 1 or 123# works too)
  silence 5s         say nothing for 5 s (a bare number means seconds)
  voice [2s]         speak at normal volume (default 1.5s)
  quiet              speak too quietly to understand (P-QUIET)
  noise              the line turns noisy (P-NOISE)
  hangup             hang up
  lookup fails | lookup slow 3s | ticket fails | transfer fails
                     what the back end does next (P-FAULT, P-WAIT)
  at 2s: STEP        do STEP at 2 s after the answer, even during a prompt";

impl Step {
    pub fn parse(line: &str) -> Result<Step, String> {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("at ") {
            let (t, step) = rest.split_once(':').ok_or("write 'at 2s: STEP'")?;
            let at = parse_duration(t)?;
            let mut s = Step::parse(step)?;
            s.at = Some(at);
            return Ok(s);
        }
        let mut words = line.split_whitespace();
        let verb = words.next().ok_or("empty step")?;
        let arg: Vec<&str> = words.collect();
        let dur = |a: Option<&&str>, default: Option<Duration>| -> Result<Duration, String> {
            match a {
                None => default.ok_or_else(|| format!("'{verb}' needs a duration, e.g. {verb} 5s")),
                Some(s) if s.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                    parse_duration(&format!("{s}s"))
                }
                Some(s) => parse_duration(s),
            }
        };
        let keys_ok = |k: &str| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        };
        let action = match (verb, arg.as_slice()) {
            ("press", [k]) if keys_ok(k) => Action::Press(k.to_string()),
            ("press", _) => return Err("press takes keys 0-9 * #, e.g. press 1".into()),
            (k, []) if keys_ok(k) => Action::Press(k.to_string()),
            // One word more at most: `silence 5 s` or `voice 2s 3s` is a typo, not 5 s.
            ("silence" | "wait", a) if a.len() <= 1 => Action::Silence(dur(a.first(), None)?),
            ("voice", a) if a.len() <= 1 => Action::Voice(dur(a.first(), Some(DEFAULT_VOICE))?),
            ("quiet", []) => Action::Quiet,
            ("noise", []) => Action::Noise,
            ("hangup", []) => Action::Hangup,
            ("lookup", ["fails"]) => Action::LookupFails,
            ("lookup", ["slow", d]) => Action::LookupSlow(dur(Some(d), None)?),
            ("ticket", ["fails"]) => Action::TicketFails,
            ("transfer", ["fails"]) => Action::TransferFails,
            _ => return Err(format!("unknown step '{line}'\n{HELP}")),
        };
        Ok(Step { at: None, action })
    }
}

/// A regular expression (ECMA 262 and `regex` alike) for the lines `Step::parse` takes,
/// for the JSON Schema of test files; a test keeps the two in step.
pub fn step_pattern() -> String {
    let dur = r"([0-9]+(\.[0-9]+)?(ms|s|m|min|h))+";
    // `silence 5` means seconds.
    let d = format!(r"([0-9]+(\.[0-9]+)?|{dur})");
    let step = format!(
        r"(press\s+[0-9*#]+|[0-9*#]+|(silence|wait)\s+{d}|voice(\s+{d})?|quiet|noise|hangup|lookup\s+fails|lookup\s+slow\s+{d}|ticket\s+fails|transfer\s+fails)"
    );
    format!(r"^\s*(at \s*{dur}\s*:\s*)?{step}\s*$")
}

/// A line of a script that is not a caller step.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptError {
    /// 1-based line in the script.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// Why it is not a step (one line; `HELP` lists the steps).
    pub message: String,
}

/// A whole script (a `--script` file, piped input): one step a line, blank lines and
/// lines starting with `#` skipped. Every line is read before the call starts, so that a
/// bad step stops the simulation instead of leaving a silent caller, and so that an
/// `at` step can act during a prompt exactly as it does in a flow test.
pub fn parse_script(text: &str) -> Result<Vec<Step>, Vec<ScriptError>> {
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match Step::parse(t) {
            Ok(s) => steps.push(s),
            Err(e) => errors.push(ScriptError {
                line: i + 1,
                text: t.to_string(),
                message: e.lines().next().unwrap_or_default().to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = self.at {
            write!(f, "at {}: ", fmt_duration(at))?;
        }
        match &self.action {
            Action::Press(k) => write!(f, "press {k}"),
            Action::Silence(d) => write!(f, "silence {}", fmt_duration(*d)),
            Action::Voice(d) => write!(f, "voice {}", fmt_duration(*d)),
            Action::Quiet => f.write_str("quiet"),
            Action::Noise => f.write_str("noise"),
            Action::Hangup => f.write_str("hangup"),
            Action::LookupFails => f.write_str("lookup fails"),
            Action::LookupSlow(d) => write!(f, "lookup slow {}", fmt_duration(*d)),
            Action::TicketFails => f.write_str("ticket fails"),
            Action::TransferFails => f.write_str("transfer fails"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_print_back() {
        for s in [
            "press 1",
            "press 100234#",
            "silence 5s",
            "voice 2s",
            "quiet",
            "noise",
            "hangup",
            "lookup fails",
            "lookup slow 3s",
            "ticket fails",
            "transfer fails",
            "at 2.5s: press 9",
        ] {
            assert_eq!(Step::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Step::parse("12#").unwrap().action,
            Action::Press("12#".into())
        );
        assert_eq!(
            Step::parse("silence 5").unwrap().action,
            Action::Silence(Duration::from_secs(5))
        );
        for bad in [
            "",
            "press",
            "press x",
            "silence",
            "fly",
            "at 2s press 1",
            "lookup",
        ] {
            assert!(Step::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_schema_pattern_takes_exactly_the_steps_the_parser_takes() {
        let re = regex::Regex::new(&step_pattern()).unwrap();
        for line in [
            "press 1",
            "press 100234#",
            "  press   *9#  ",
            "12#",
            "silence 5s",
            "silence 5",
            "silence 2.5",
            "wait 1m30s",
            "voice",
            "voice 2s",
            "voice 3",
            "quiet",
            "noise",
            "hangup",
            "lookup fails",
            "lookup slow 3s",
            "lookup slow 4",
            "ticket fails",
            "transfer fails",
            "at 2s: press 1",
            "at 2.5s:press 9",
            "at 1m 30s: hangup",
            "at 45s : voice 2s",
            "",
            "press",
            "press x",
            "press 1 2",
            "pres 1",
            "silence",
            "silence 5 s",
            "silence 5x",
            "voice 2s 3s",
            "quiet please",
            "hang up",
            "lookup",
            "lookup slow",
            "at 2s press 1",
            "at 2s: pres 1",
            "at two: press 1",
            "at: press 1",
            "fly",
            "1a",
        ] {
            assert_eq!(
                re.is_match(line),
                Step::parse(line).is_ok(),
                "{line:?}: the schema's pattern and the parser disagree"
            );
        }
    }

    #[test]
    fn a_script_names_every_bad_line() {
        let ok =
            parse_script("# a caller who knows the menu\n\nat 2s: press 1\n  press 2\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].at, Some(Duration::from_secs(2)));
        let errors = parse_script("press 1\npres 1\nhangup\nat 3s: fly\n").unwrap_err();
        let lines: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.text.as_str())).collect();
        assert_eq!(lines, [(2, "pres 1"), (4, "at 3s: fly")]);
        assert_eq!(errors[0].message, "unknown step 'pres 1'");
        assert_eq!(errors[1].message, "unknown step 'fly'");
    }
}
