//! Templates (`"{account}"`) and conditions (`rings >= 3`) over call variables.
use std::collections::BTreeMap;

pub type Vars = BTreeMap<String, String>;

/// A string with `{var}` placeholders, parsed once at load time.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Lit(String),
    Var(String),
}

pub fn valid_var_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in \"{s}\""))?;
            let name = after[..close].trim();
            if !valid_var_name(name) {
                return Err(format!(
                    "\"{{{name}}}\" is not a variable name (letters, digits, '_', '.')"
                ));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    pub fn literal(s: &str) -> Template {
        Template {
            parts: vec![Part::Lit(s.to_string())],
        }
    }

    /// Missing variables render as empty: a caller must never hear an error because a
    /// lookup returned fewer fields than the designer expected.
    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => {
                    if let Some(val) = vars.get(v) {
                        out.push_str(val)
                    }
                }
            }
        }
        out
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.parts {
            match p {
                Part::Lit(s) => f.write_str(s)?,
                Part::Var(v) => write!(f, "{{{v}}}")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `caller matches "^1[3-9]"`: a regular expression found in the value.
    Matches,
}

/// A regular expression compiled when the flow is loaded; equal when written the same.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Designers' patterns are short; a bigger one is a mistake, not a need.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// `var`, `not var`, `var OP value`, where value is a literal or a `{var}` template, or
/// `var matches "REGEX"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    pub var: String,
    pub negate: bool,
    /// For `matches`, the template is the pattern as written (no `{var}` in it).
    pub cmp: Option<(Op, Template)>,
    /// The compiled pattern of `matches`.
    pub pattern: Option<Pattern>,
    pub source: String,
}

impl Cond {
    pub fn parse(s: &str) -> Result<Cond, String> {
        let src = s.trim();
        let (negate, body) = match src.strip_prefix("not ") {
            Some(b) => (true, b.trim()),
            None => (false, src),
        };
        // Before the operators: a pattern may well contain '<', '>' or '='.
        if let Some((var, pat)) = body.split_once(" matches ") {
            return Self::parse_matches(src, negate, var.trim(), pat.trim());
        }
        const OPS: [(&str, Op); 6] = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        for (tok, op) in OPS {
            if let Some(i) = body.find(tok) {
                let var = body[..i].trim();
                let val = body[i + tok.len()..].trim().trim_matches('"');
                if !valid_var_name(var) {
                    return Err(format!(
                        "condition \"{src}\": \"{var}\" is not a variable name"
                    ));
                }
                if val.is_empty() {
                    return Err(format!("condition \"{src}\": nothing to compare with"));
                }
                return Ok(Cond {
                    var: var.to_string(),
                    negate,
                    cmp: Some((op, Template::parse(val)?)),
                    pattern: None,
                    source: src.to_string(),
                });
            }
        }
        if !valid_var_name(body) {
            return Err(format!(
                "condition \"{src}\" is not `var`, `not var`, `var OP value` (OP: == != < <= > >=) or `var matches \"REGEX\"`"
            ));
        }
        Ok(Cond {
            var: body.to_string(),
            negate,
            cmp: None,
            pattern: None,
            source: src.to_string(),
        })
    }

    fn parse_matches(src: &str, negate: bool, var: &str, pat: &str) -> Result<Cond, String> {
        if !valid_var_name(var) {
            return Err(format!(
                "condition \"{src}\": \"{var}\" is not a variable name"
            ));
        }
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| pat.strip_prefix(*q).and_then(|p| p.strip_suffix(*q)))
            .unwrap_or(pat);
        if unquoted.is_empty() {
            return Err(format!(
                "condition \"{src}\": matches needs a pattern, e.g. caller matches \"^1[3-9]\""
            ));
        }
        let re = regex::RegexBuilder::new(unquoted)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                format!(
                    "condition \"{src}\": not a valid regular expression: {}",
                    e.to_string().lines().last().unwrap_or("").trim()
                )
            })?;
        Ok(Cond {
            var: var.to_string(),
            negate,
            cmp: Some((Op::Matches, Template::literal(unquoted))),
            pattern: Some(Pattern(re)),
            source: src.to_string(),
        })
    }

    pub fn eval(&self, vars: &Vars) -> bool {
        let lhs = vars.get(&self.var).map(String::as_str).unwrap_or("");
        let r = match &self.cmp {
            None => !(lhs.is_empty() || lhs == "0" || lhs == "false" || lhs == "no"),
            Some((Op::Matches, _)) => self.pattern.as_ref().is_some_and(|p| p.0.is_match(lhs)),
            Some((op, rhs)) => {
                let rhs = rhs.render(vars);
                // An unset (or empty) variable is 0 next to a number: a counter nobody
                // has counted yet is at 0.
                let lhs = if lhs.trim().is_empty() && rhs.trim().parse::<f64>().is_ok() {
                    "0"
                } else {
                    lhs
                };
                let ord = match (lhs.trim().parse::<f64>(), rhs.trim().parse::<f64>()) {
                    (Ok(a), Ok(b)) => a.partial_cmp(&b),
                    _ => Some(lhs.cmp(rhs.as_str())),
                };
                match (op, ord) {
                    (_, None) | (Op::Matches, _) => false,
                    (Op::Eq, Some(o)) => o.is_eq(),
                    (Op::Ne, Some(o)) => o.is_ne(),
                    (Op::Lt, Some(o)) => o.is_lt(),
                    (Op::Le, Some(o)) => o.is_le(),
                    (Op::Gt, Some(o)) => o.is_gt(),
                    (Op::Ge, Some(o)) => o.is_ge(),
                }
            }
        };
        r != self.negate
    }
}

/// Adds to counters (`inc:`); a counter that is unset or not a number starts from 0.
pub fn count(vars: &mut Vars, counters: &[(String, i64)]) {
    for (name, by) in counters {
        let was: i64 = vars
            .get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        vars.insert(name.clone(), was.saturating_add(*by).to_string());
    }
}

/// Durations as designers write them: `5s`, `500ms`, `15m`, `2h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let bad = || format!("\"{s}\" is not a duration (write e.g. 5s, 500ms, 15m, 2h)");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return Err(bad()),
        };
        total_ms += (n * ms_per).round() as u128;
        rest = &rest[unit_len..];
    }
    if total_ms > 7 * 24 * 3_600_000 {
        return Err(format!("\"{s}\" is longer than a week"));
    }
    Ok(std::time::Duration::from_millis(total_ms as u64))
}

/// The shortest way to write a duration back (`5s`, `1h30m`, `250ms`).
pub fn fmt_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        if ms > 1000 {
            let frac = format!("{:03}", ms % 1000);
            return format!("{}.{}s", ms / 1000, frac.trim_end_matches('0'));
        }
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    if s >= 3600 {
        out += &format!("{}h", s / 3600);
        s %= 3600;
    }
    if s >= 60 {
        out += &format!("{}m", s / 60);
        s %= 60;
    }
    if s > 0 {
        out += &format!("{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vars(p: &[(&str, &str)]) -> Vars {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn templates_render_and_list_vars() {
        let t = Template::parse("acct {account} of {acct.name}!").unwrap();
        assert_eq!(
            t.render(&vars(&[("account", "42"), ("acct.name", "Li")])),
            "acct 42 of Li!"
        );
        assert_eq!(t.vars().collect::<Vec<_>>(), vec!["account", "acct.name"]);
        assert_eq!(t.render(&Vars::new()), "acct  of !");
        assert!(Template::parse("{oops").is_err());
        assert!(Template::parse("{a b}").is_err());
    }

    #[test]
    fn conditions_compare_numbers_as_numbers() {
        let v = vars(&[("rings", "10"), ("limit", "3"), ("kind", "complex")]);
        assert!(Cond::parse("rings >= 3").unwrap().eval(&v));
        assert!(Cond::parse("rings > {limit}").unwrap().eval(&v));
        assert!(!Cond::parse("rings < 9").unwrap().eval(&v));
        assert!(Cond::parse("kind == complex").unwrap().eval(&v));
        assert!(Cond::parse("kind != \"simple\"").unwrap().eval(&v));
        assert!(Cond::parse("rings").unwrap().eval(&v));
        assert!(Cond::parse("not missing").unwrap().eval(&v));
        assert!(Cond::parse("3 >= rings").is_err());
        assert!(Cond::parse("rings >=").is_err());
    }

    #[test]
    fn an_unset_variable_is_zero_next_to_a_number() {
        let v = vars(&[("tries", "2")]);
        assert!(Cond::parse("tries >= 2").unwrap().eval(&v));
        assert!(!Cond::parse("other >= 1").unwrap().eval(&v));
        assert!(Cond::parse("other == 0").unwrap().eval(&v));
        assert!(Cond::parse("other < 3").unwrap().eval(&v));
        assert!(!Cond::parse("other == x").unwrap().eval(&v));
    }

    #[test]
    fn patterns_on_caller_data() {
        let c = Cond::parse("caller matches \"^1[3-9]\"").unwrap();
        assert!(c.eval(&vars(&[("caller", "13800138000")])));
        assert!(!c.eval(&vars(&[("caller", "02188886666")])));
        assert!(!c.eval(&Vars::new()));
        let n = Cond::parse("not called matches '^(water|8[0-9]{3})$'").unwrap();
        assert!(!n.eval(&vars(&[("called", "8001")])));
        assert!(n.eval(&vars(&[("called", "property")])));
        // Operators inside a pattern are the pattern's.
        let o = Cond::parse("caller matches ^1[3-9]|<=").unwrap();
        assert!(o.eval(&vars(&[("caller", "a<=b")])));
        for bad in [
            "caller matches \"[0-9\"",
            "caller matches \"\"",
            "3x matches \"a\"",
        ] {
            assert!(Cond::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Cond::parse("caller matches \"(\"")
                .unwrap_err()
                .contains("not a valid regular expression")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "5", "s", "5x", "-1s", "9999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in ["5s", "15m", "2h", "1h30m", "250ms", "1.5s"] {
            assert_eq!(fmt_duration(parse_duration(d).unwrap()), d);
        }
    }
}
