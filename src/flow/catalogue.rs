//! The prompt catalogue (`prompts/catalogue.yaml`): prompt id → Mandarin text and WAV.
//!
//! A prompt's text may hold variables (`{agent_id}`); its recording is then cut into
//! the literal segments (`greeting.1.wav`, `greeting.2.wav`, ...) and the variables are
//! spoken between them from fragments (say.rs) or from other prompts (an area's name).
use super::diag::{Diagnostic, Diags, Pos};
use super::expr::{Template, Vars, valid_var_name};
use super::model::SpokenKind;
use super::say;
use super::yaml::{self, Node, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SAMPLE_RATE: u32 = 8000;
/// The pause between digits read slowly (P-NOTE: read long numbers slowly).
pub const SLOW_DIGIT_GAP: Duration = Duration::from_millis(400);
/// The file next to the catalogue that records which text each WAV was made from.
pub const STAMPS: &str = "stamps.tsv";

#[derive(Clone, Debug)]
pub struct Catalogue {
    pub file: PathBuf,
    pub dir: PathBuf,
    pub prompts: BTreeMap<String, PromptDef>,
    pub clips: HashMap<String, ClipInfo>,
}

#[derive(Clone, Debug)]
pub struct PromptDef {
    pub id: String,
    pub pos: Pos,
    pub text: String,
    pub parts: Vec<PromptPart>,
}

#[derive(Clone, Debug)]
pub enum PromptPart {
    Clip(String),
    Var(String, SpokenKind),
}

/// One recorded WAV: a whole prompt, a segment of one, or a fragment.
#[derive(Clone, Debug)]
pub struct ClipInfo {
    pub id: String,
    pub text: String,
    pub path: PathBuf,
    pub pos: Pos,
    pub duration: Option<Duration>,
    /// Why the WAV cannot be used as it is, for `hotline check`.
    pub problem: Option<String>,
}

/// What the caller hears for one say item.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    /// The prompt id, or the spoken kind (`digits`, `money`, ...).
    pub prompt: String,
    /// The value spoken, for spoken kinds.
    pub value: Option<String>,
    pub text: String,
    pub clips: Vec<Clip>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Clip {
    Audio(String),
    Pause(Duration),
}

impl Catalogue {
    pub fn load(path: &Path) -> Result<Catalogue, Vec<Diagnostic>> {
        let mut d = Diags::new(path);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                d.error(Pos::FILE, format!("cannot read the prompt catalogue: {e}"));
                return Err(d.into_sorted());
            }
        };
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let cat = Self::parse(&text, path, &dir, &mut d);
        match cat {
            Some(c) if d.is_empty() => Ok(c),
            _ => Err(d.into_sorted()),
        }
    }

    /// Parses the catalogue and inspects every WAV it names (header only).
    pub fn parse(text: &str, file: &Path, dir: &Path, d: &mut Diags) -> Option<Catalogue> {
        let root = yaml::parse(text, d)?;
        let stamps = read_stamps(&dir.join(STAMPS));
        let mut cat = Catalogue {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
            prompts: BTreeMap::new(),
            clips: HashMap::new(),
        };
        let Some(top) = root.as_map() else {
            d.error(root.pos, "the catalogue must be a mapping with 'prompts:'");
            return None;
        };
        let mut prompts_node = None;
        for (k, v) in top {
            match k.scalar().as_deref() {
                Some("prompts") => prompts_node = Some(v),
                Some("description") => {}
                other => d.error(
                    k.pos,
                    format!(
                        "unknown key '{}' in the catalogue (expected prompts, description)",
                        other.unwrap_or("?")
                    ),
                ),
            }
        }
        let Some(map) = prompts_node.and_then(Node::as_map) else {
            d.error(
                root.pos,
                "the catalogue needs 'prompts:' mapping id → {text, file}",
            );
            return None;
        };
        for (k, v) in map {
            let Some(id) = k.scalar().filter(|s| valid_var_name(s)) else {
                d.error(k.pos, "a prompt id must be a name (letters, digits, '_')");
                continue;
            };
            if cat.prompts.contains_key(&id) {
                d.error(k.pos, format!("prompt '{id}' is defined twice"));
                continue;
            }
            if let Some(p) = cat.entry(&id, k.pos, v, &stamps, d) {
                cat.prompts.insert(id, p);
            }
        }
        for (id, text) in say::FRAGMENTS {
            if !cat.prompts.contains_key(*id) {
                d.error(
                    root.pos,
                    format!("fragment prompt '{id}' ({text}) is missing; numbers, money, dates and times are read from it"),
                );
            }
        }
        Some(cat)
    }

    fn entry(
        &mut self,
        id: &str,
        pos: Pos,
        v: &Node,
        stamps: &HashMap<String, String>,
        d: &mut Diags,
    ) -> Option<PromptDef> {
        let Some(m) = v.as_map() else {
            d.error(
                v.pos,
                format!("prompt '{id}' must be a mapping with text and file"),
            );
            return None;
        };
        let (mut text, mut file, mut speak) = (None, None, Vec::new());
        for (k, val) in m {
            match (k.scalar().as_deref(), &val.value) {
                (Some("text"), Value::Str(s)) => text = Some(s.trim().to_string()),
                (Some("file"), Value::Str(s)) => file = Some((s.clone(), val.pos)),
                (Some("speak"), Value::Map(kinds)) => {
                    for (vk, vv) in kinds {
                        let name = vk.scalar().unwrap_or_default();
                        match vv.scalar().as_deref().and_then(SpokenKind::from_name) {
                            Some(kind) => speak.push((name, kind)),
                            None => d.error(
                                vv.pos,
                                format!(
                                    "speak.{name} must be one of: {}",
                                    SpokenKind::ALL.map(|k| k.name()).join(", ")
                                ),
                            ),
                        }
                    }
                }
                (Some(key @ ("text" | "file" | "speak")), _) => {
                    d.error(val.pos, format!("prompt '{id}': {key} has the wrong type"))
                }
                (other, _) => d.error(
                    k.pos,
                    format!(
                        "unknown key '{}' in prompt '{id}' (expected text, file, speak)",
                        other.unwrap_or("?")
                    ),
                ),
            }
        }
        let (Some(text), Some((file, file_pos))) = (text, file) else {
            d.error(pos, format!("prompt '{id}' needs both 'text' and 'file'"));
            return None;
        };
        let Some(stem) = file.strip_suffix(".wav").filter(|s| {
            !s.is_empty() && !s.contains('/') && !s.contains('\\') && !s.starts_with('.')
        }) else {
            d.error(
                file_pos,
                format!("file '{file}' must be a NAME.wav next to the catalogue"),
            );
            return None;
        };
        let tpl = match Template::parse(&text) {
            Ok(t) => t,
            Err(e) => {
                d.error(pos, format!("prompt '{id}': {e}"));
                return None;
            }
        };
        let has_vars = tpl.vars().next().is_some();
        let mut parts = Vec::new();
        let mut seg = 0;
        for p in &tpl.parts {
            match p {
                super::expr::Part::Lit(s) => {
                    let clip = if has_vars {
                        seg += 1;
                        format!("{stem}.{seg}")
                    } else {
                        stem.to_string()
                    };
                    self.add_clip(&clip, s, pos, stamps);
                    parts.push(PromptPart::Clip(clip));
                }
                super::expr::Part::Var(name) => {
                    match speak.iter().find(|(n, _)| n == name) {
                        Some((_, kind)) => parts.push(PromptPart::Var(name.clone(), *kind)),
                        None => d.error(
                            pos,
                            format!("prompt '{id}': say how {{{name}}} is spoken: speak: {{ {name}: digits|number|money|date|time|prompt }}"),
                        ),
                    }
                }
            }
        }
        for (name, _) in &speak {
            if !tpl.vars().any(|v| v == name) {
                d.error(
                    pos,
                    format!("prompt '{id}': speak.{name} names no {{{name}}} in the text"),
                );
            }
        }
        Some(PromptDef {
            id: id.to_string(),
            pos,
            text,
            parts,
        })
    }

    fn add_clip(&mut self, clip: &str, text: &str, pos: Pos, stamps: &HashMap<String, String>) {
        let path = self.dir.join(format!("{clip}.wav"));
        let (duration, mut problem) = inspect_wav(&path);
        if problem.is_none() && stamps.get(clip) != Some(&text_hash(text)) {
            problem = Some(format!(
                "{} is older than its text \"{text}\": run scripts/gen-prompts.sh",
                path.display()
            ));
        }
        self.clips.insert(
            clip.to_string(),
            ClipInfo {
                id: clip.to_string(),
                text: text.to_string(),
                path,
                pos,
                duration,
                problem,
            },
        );
    }

    /// Problems with the WAV files, for `hotline check`.
    pub fn check_files(&self) -> Vec<Diagnostic> {
        let mut d = Diags::new(&self.file);
        let mut clips: Vec<&ClipInfo> = self.clips.values().collect();
        clips.sort_by(|a, b| (a.pos, &a.id).cmp(&(b.pos, &b.id)));
        for c in clips {
            if let Some(p) = &c.problem {
                d.error(c.pos, format!("prompt clip '{}': {p}", c.id));
            }
        }
        d.into_sorted()
    }

    pub fn has(&self, id: &str) -> bool {
        self.prompts.contains_key(id)
    }

    /// How long a clip plays; an estimate from the text when its WAV is unusable, so that
    /// simulation still runs while the recordings are being made.
    pub fn clip_duration(&self, clip: &Clip) -> Duration {
        match clip {
            Clip::Pause(d) => *d,
            Clip::Audio(id) => match self.clips.get(id) {
                Some(ClipInfo {
                    duration: Some(d), ..
                }) => *d,
                Some(c) => Duration::from_millis(250 * c.text.chars().count().max(1) as u64),
                None => Duration::from_millis(
                    250 * say::fragment_text(id).chars().count().max(1) as u64,
                ),
            },
        }
    }

    pub fn duration(&self, u: &Utterance) -> Duration {
        u.clips.iter().map(|c| self.clip_duration(c)).sum()
    }

    /// A prompt with the call's variables filled in.
    pub fn utterance(&self, id: &str, vars: &Vars) -> Option<Utterance> {
        let p = self.prompts.get(id)?;
        let mut u = Utterance {
            prompt: id.to_string(),
            value: None,
            text: String::new(),
            clips: Vec::new(),
        };
        for part in &p.parts {
            match part {
                PromptPart::Clip(c) => {
                    u.clips.push(Clip::Audio(c.clone()));
                    if let Some(info) = self.clips.get(c) {
                        u.text.push_str(&info.text);
                    }
                }
                PromptPart::Var(name, kind) => {
                    let value = vars.get(name).map(String::as_str).unwrap_or("");
                    if let Some(s) = self.spoken(*kind, value) {
                        u.text.push_str(&s.text);
                        u.clips.extend(s.clips);
                    }
                }
            }
        }
        Some(u)
    }

    /// A value spoken as `kind`; `None` if it cannot be (an empty account number, an
    /// area that has no recording).
    pub fn spoken(&self, kind: SpokenKind, value: &str) -> Option<Utterance> {
        let mut u = Utterance {
            prompt: kind.name().to_string(),
            value: Some(value.to_string()),
            text: String::new(),
            clips: Vec::new(),
        };
        if kind == SpokenKind::Prompt {
            let p = self.prompts.get(value.trim())?;
            // A prompt spoken as a value is plain text: no nesting of templates.
            if p.parts.iter().any(|x| matches!(x, PromptPart::Var(..))) {
                return None;
            }
            u.text = p.text.clone();
            u.clips = p
                .parts
                .iter()
                .filter_map(|x| match x {
                    PromptPart::Clip(c) => Some(Clip::Audio(c.clone())),
                    PromptPart::Var(..) => None,
                })
                .collect();
            return Some(u);
        }
        let frags = say::speak(kind, value)?;
        for (i, f) in frags.iter().enumerate() {
            if kind == SpokenKind::DigitsSlow && i > 0 {
                u.clips.push(Clip::Pause(SLOW_DIGIT_GAP));
            }
            u.clips.push(Clip::Audio((*f).to_string()));
        }
        u.text = say::text_of(&frags);
        Some(u)
    }

    /// Every clip that must be recorded, with its text, in catalogue order.
    pub fn plan(&self) -> Vec<&ClipInfo> {
        let mut v: Vec<&ClipInfo> = self.clips.values().collect();
        v.sort_by(|a, b| (a.pos, &a.id).cmp(&(b.pos, &b.id)));
        v
    }
}

pub fn text_hash(text: &str) -> String {
    let h = Sha256::digest(text.as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_stamps(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once('\t')?;
            Some((a.trim().to_string(), b.trim().to_string()))
        })
        .collect()
}

/// Reads a WAV's header: telephone audio is 8 kHz, 16-bit, mono PCM.
fn inspect_wav(path: &Path) -> (Option<Duration>, Option<String>) {
    let r = match hound::WavReader::open(path) {
        Ok(r) => r,
        Err(hound::Error::IoError(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return (
                None,
                Some(format!(
                    "{} is missing: run scripts/gen-prompts.sh",
                    path.display()
                )),
            );
        }
        Err(e) => {
            return (
                None,
                Some(format!("{} is not a WAV file: {e}", path.display())),
            );
        }
    };
    let s = r.spec();
    if s.sample_rate != SAMPLE_RATE
        || s.bits_per_sample != 16
        || s.channels != 1
        || s.sample_format != hound::SampleFormat::Int
    {
        return (
            None,
            Some(format!(
                "{} is {} Hz, {}-bit, {} channel(s); prompts must be 8000 Hz, 16-bit, mono PCM",
                path.display(),
                s.sample_rate,
                s.bits_per_sample,
                s.channels
            )),
        );
    }
    let samples = r.duration();
    if samples == 0 {
        return (None, Some(format!("{} is empty", path.display())));
    }
    (
        Some(Duration::from_micros(
            u64::from(samples) * 1_000_000 / u64::from(SAMPLE_RATE),
        )),
        None,
    )
}
