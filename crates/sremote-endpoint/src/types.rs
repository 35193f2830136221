//! Human-readable type names for signatures, derived from [`std::any::type_name`].
//!
//! Signatures are shown in a Python-like notation, the same for built-in, custom,
//! plugin and (later) Python modules: `os.getenv(key: str, default: str | None = None) -> str | None`.
//! Well-known Rust types map to their JSON/Python shape (`String` → `str`, `Vec<T>` →
//! `list[T]`, `Option<T>` → `T | None`, `HashMap<K, V>` → `dict[K, V]`, `Blob` → `bytes`);
//! any other type shows its last path segment (`my_crate::Point` → `Point`).

/// The display name of `T` (see the module docs).
pub fn pretty_type_of<T: ?Sized>() -> String {
    pretty_type(std::any::type_name::<T>())
}

/// The display name of a type given as a `std::any::type_name` string.
pub fn pretty_type(type_name: &str) -> String {
    let mut parser = Parser {
        s: type_name.as_bytes(),
        pos: 0,
    };
    match parser.ty() {
        Some(ty) if parser.pos == parser.s.len() => render(&ty),
        _ => fallback(type_name),
    }
}

#[derive(Debug)]
enum Ty {
    Path(String, Vec<Ty>),
    Tuple(Vec<Ty>),
    List(Box<Ty>),
    Ref(Box<Ty>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn ty(&mut self) -> Option<Ty> {
        self.skip_ws();
        if self.eat(b'&') {
            self.skip_ws();
            if self.s.get(self.pos) == Some(&b'\'') {
                while self.pos < self.s.len() && self.s[self.pos] != b' ' {
                    self.pos += 1;
                }
                self.skip_ws();
            }
            self.eat_word("mut ");
            return Some(Ty::Ref(Box::new(self.ty()?)));
        }
        if self.eat(b'(') {
            let items = self.list(b')')?;
            return Some(Ty::Tuple(items));
        }
        if self.eat(b'[') {
            let inner = self.ty()?;
            if self.eat(b';') {
                while self.pos < self.s.len() && self.s[self.pos] != b']' {
                    self.pos += 1;
                }
            }
            if !self.eat(b']') {
                return None;
            }
            return Some(Ty::List(Box::new(inner)));
        }
        self.eat_word("dyn ");
        let start = self.pos;
        while self.pos < self.s.len() && !b"<>,()[];".contains(&self.s[self.pos]) {
            self.pos += 1;
        }
        let path = std::str::from_utf8(&self.s[start..self.pos])
            .ok()?
            .trim()
            .to_string();
        if path.is_empty() {
            return None;
        }
        let args = if self.eat(b'<') {
            self.list(b'>')?
        } else {
            Vec::new()
        };
        Some(Ty::Path(path, args))
    }

    /// Comma-separated types up to `close` (consumed).
    fn list(&mut self, close: u8) -> Option<Vec<Ty>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.ty()?);
            if !self.eat(b',') {
                return if self.eat(close) { Some(items) } else { None };
            }
        }
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

fn fallback(type_name: &str) -> String {
    last_segment(type_name).to_string()
}

fn render(ty: &Ty) -> String {
    match ty {
        Ty::Ref(inner) => render(inner),
        Ty::List(inner) => format!("list[{}]", render(inner)),
        Ty::Tuple(items) if items.is_empty() => "None".to_string(),
        Ty::Tuple(items) => format!("tuple[{}]", join(items)),
        Ty::Path(path, args) => {
            let name = last_segment(path);
            let arg = |i: usize| args.get(i).map(render).unwrap_or_else(|| "any".to_string());
            match name {
                "String" | "str" | "char" | "PathBuf" | "Path" | "OsString" | "OsStr" => {
                    "str".to_string()
                }
                "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64"
                | "u128" | "usize" | "NonZeroU64" | "NonZeroUsize" => "int".to_string(),
                "f32" | "f64" => "float".to_string(),
                "bool" => "bool".to_string(),
                "Value" => "any".to_string(),
                "Blob" => "bytes".to_string(),
                "Option" => format!("{} | None", arg(0)),
                "Vec" | "VecDeque" | "HashSet" | "BTreeSet" | "LinkedList" | "BinaryHeap" => {
                    format!("list[{}]", arg(0))
                }
                "HashMap" | "BTreeMap" | "Map" => format!("dict[{}, {}]", arg(0), arg(1)),
                "Box" | "Arc" | "Rc" | "Result" => arg(0),
                "Cow" => args.last().map(render).unwrap_or_else(|| "any".to_string()),
                _ if args.is_empty() => name.to_string(),
                _ => format!("{name}[{}]", join(args)),
            }
        }
    }
}

fn join(items: &[Ty]) -> String {
    items.iter().map(render).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    struct Point;

    #[test]
    fn well_known_types_map_to_json_shapes() {
        assert_eq!(pretty_type_of::<String>(), "str");
        assert_eq!(pretty_type_of::<&str>(), "str");
        assert_eq!(pretty_type_of::<i64>(), "int");
        assert_eq!(pretty_type_of::<Option<String>>(), "str | None");
        assert_eq!(pretty_type_of::<Vec<Option<u8>>>(), "list[int | None]");
        assert_eq!(pretty_type_of::<HashMap<String, f64>>(), "dict[str, float]");
        assert_eq!(
            pretty_type_of::<BTreeMap<String, Vec<bool>>>(),
            "dict[str, list[bool]]"
        );
        assert_eq!(pretty_type_of::<(i64, String)>(), "tuple[int, str]");
        assert_eq!(pretty_type_of::<()>(), "None");
        assert_eq!(pretty_type_of::<[u8; 4]>(), "list[int]");
        assert_eq!(pretty_type_of::<&[u8]>(), "list[int]");
        assert_eq!(pretty_type_of::<serde_json::Value>(), "any");
        assert_eq!(pretty_type_of::<sremote_core::Blob>(), "bytes");
        assert_eq!(pretty_type_of::<Result<u32, String>>(), "int");
        assert_eq!(pretty_type_of::<Point>(), "Point");
        assert_eq!(pretty_type_of::<Vec<Point>>(), "list[Point]");
        assert_eq!(pretty_type_of::<Box<dyn std::error::Error>>(), "Error");
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "",
            "<",
            "a<b",
            "&'",
            "[",
            "(a,",
            "<T as Trait>::Out",
            "a::b::",
            "&&&&",
        ] {
            let _ = pretty_type(s);
        }
    }
}
