//! Whatever `inject` does not inject must read back exactly as it was
//! read: arbitrary strings, numbers and Kubernetes-looking scalars written
//! by a YAML library, and generated YAML text with block scalars of every
//! chomping indicator (at the end of the file, with and without a final
//! line break), CRLF line endings, anchors, aliases and tags.

use crate::support;

use forcebacklog::manifest::{Output, inject, inject_str};
use forcebacklog::patch::Injector;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::{lines_kept, strip_injection};

/// Reads YAML the way `inject` does (as kubectl: YAML 1.1).
fn parse(yaml: &str) -> Vec<Value> {
    support::read(yaml)
}

fn round_trip(doc: &Value) {
    let input = serde_saphyr::to_string(doc).expect("YAML");
    for output in [Output::Splice, Output::Reformat] {
        let out =
            inject(&input, "t.yaml", Some(100), &Injector::default(), output).expect("inject");
        assert_eq!(
            parse(&out.yaml),
            vec![doc.clone()],
            "input:\n{input}\noutput:\n{}",
            out.yaml
        );
    }
}

#[test]
fn tricky_scalars_keep_their_type() {
    let tricky = [
        "",
        " ",
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "Y",
        "N",
        "null",
        "Null",
        "~",
        "0644",
        "0o17",
        "0x1F",
        "1e3",
        ".5",
        "+1",
        "-1",
        "1_000",
        "12:30",
        "2001-12-14",
        ".inf",
        ".nan",
        "- a",
        "? b",
        "a: b",
        "#c",
        "&x",
        "*x",
        "!t",
        "%p",
        "@a",
        "`b",
        "|",
        ">",
        "'",
        "\"",
        "a\nb",
        "trailing ",
        "\ttab",
        "é ü 中文 😀",
        "\u{7f}",
        "\u{1b}[0m",
        "---",
        "...",
        "{a: 1}",
        "[1]",
        "=",
    ];
    let data: serde_json::Map<String, Value> = tricky
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("k{i}"), Value::String((*s).to_owned())))
        .collect();
    round_trip(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}),
    );
    round_trip(
        &json!({"apiVersion": "v1", "kind": "Thing", "n": [0, 1, -5, 420, 1.5, 1e300, true, null],
                       "keys": {"yes": 1, "0644": 2, "": 3, "a b": 4}}),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_round_trip(values in prop::collection::vec(any::<String>(), 1..6)) {
        let data: serde_json::Map<String, Value> = values
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("k{i}"), Value::String(s)))
            .collect();
        round_trip(&json!({"apiVersion": "v1", "kind": "ConfigMap", "data": data}));
    }

    #[test]
    fn annotated_pod_strings_round_trip(image in "\\PC{0,30}", arg in any::<String>()) {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "a", "image": image, "args": [arg]}]}});
        let input = serde_saphyr::to_string(&pod).expect("YAML");
        let out = inject_str(&input, "t.yaml", Some(100), &Injector::default()).expect("inject");
        let docs = parse(&out.yaml);
        prop_assert_eq!(&docs[0]["spec"]["containers"][0]["image"], &pod["spec"]["containers"][0]["image"]);
        prop_assert_eq!(&docs[0]["spec"]["containers"][0]["args"], &pod["spec"]["containers"][0]["args"]);
        let again = inject_str(&out.yaml, "t.yaml", Some(100), &Injector::default()).expect("inject");
        prop_assert_eq!(again.yaml, out.yaml);
    }
}

/// A block scalar as written in a generated file.
#[derive(Debug, Clone)]
struct Block {
    /// `|`, `|-`, `|+`, `>`, `>-`, `>+`.
    indicator: &'static str,
    /// Content lines (one word each).
    lines: Vec<String>,
    /// Empty lines after the content.
    blank: usize,
    /// `&aN` on it, and an alias to it after it (ConfigMap entries only).
    anchor: bool,
    /// `!!str` on it.
    tag: bool,
}

impl Block {
    /// `key: <header>` and the indented lines, each ending in `eol`.
    fn write(&self, out: &mut String, key: &str, indent: usize, id: usize, eol: &str) {
        let pad = " ".repeat(indent);
        out.push_str(&format!("{pad}{key}: "));
        if self.anchor {
            out.push_str(&format!("&a{id} "));
        }
        if self.tag {
            out.push_str("!!str ");
        }
        out.push_str(self.indicator);
        out.push_str(eol);
        for line in &self.lines {
            out.push_str(&format!("{pad}  {line}{eol}"));
        }
        for _ in 0..self.blank {
            out.push_str(eol);
        }
    }

    /// The value YAML gives it; `at_end`: it ends the input, whose final
    /// line break was removed.
    fn value(&self, at_end: bool) -> String {
        let content = if self.indicator.starts_with('|') {
            self.lines.join("\n")
        } else {
            self.lines.join(" ")
        };
        let breaks = if at_end { self.blank } else { self.blank + 1 };
        match &self.indicator[1..] {
            "-" => content,
            "+" => content + &"\n".repeat(breaks),
            _ => content + if breaks > 0 { "\n" } else { "" },
        }
    }
}

fn block() -> impl Strategy<Value = Block> {
    (
        prop::sample::select(vec!["|", "|-", "|+", ">", ">-", ">+"]),
        prop::collection::vec("[a-z]{1,6}", 1..4),
        0..3usize,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(indicator, lines, blank, anchor, tag)| Block {
            indicator,
            lines,
            blank,
            anchor,
            tag,
        })
}

/// A generated stream: a ConfigMap of block scalars and a Pod whose
/// annotation and last container field are block scalars.
#[derive(Debug, Clone)]
struct Stream {
    data: Vec<Block>,
    note: Block,
    working_dir: Block,
    pod_first: bool,
    crlf: bool,
    final_break: bool,
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop::collection::vec(block(), 1..4),
        block(),
        block(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(data, note, working_dir, pod_first, crlf, final_break)| Stream {
                data,
                note: Block {
                    anchor: false,
                    ..note
                },
                working_dir: Block {
                    anchor: false,
                    ..working_dir
                },
                pod_first,
                crlf,
                final_break,
            },
        )
}

impl Stream {
    /// The text, and the values it must read as: the ConfigMap's data,
    /// the Pod's note, the Pod's workingDir.
    fn render(&self) -> (String, Value, String, String) {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut config = format!(
            "apiVersion: v1{eol}kind: ConfigMap{eol}metadata:{eol}  name: c{eol}data:{eol}"
        );
        let mut data = serde_json::Map::new();
        for (i, b) in self.data.iter().enumerate() {
            b.write(&mut config, &format!("k{i}"), 2, i, eol);
            if b.anchor {
                config.push_str(&format!("  copy{i}: *a{i}{eol}"));
            }
        }
        let mut pod = format!(
            "apiVersion: v1{eol}kind: Pod{eol}metadata:{eol}  name: p{eol}  annotations:{eol}"
        );
        self.note.write(&mut pod, "note", 4, 100, eol);
        pod.push_str(&format!(
            "spec:{eol}  containers:{eol}  - name: a{eol}    image: x{eol}"
        ));
        self.working_dir.write(&mut pod, "workingDir", 4, 101, eol);
        let (first, second) = if self.pod_first {
            (&pod, &config)
        } else {
            (&config, &pod)
        };
        let mut text = format!("{first}---{eol}{second}");
        if !self.final_break {
            text.truncate(text.len() - eol.len());
        }
        let at_end = |last: bool| last && !self.final_break;
        let last_data = self.data.len() - 1;
        for (i, b) in self.data.iter().enumerate() {
            let end = at_end(self.pod_first && i == last_data && !b.anchor);
            data.insert(format!("k{i}"), Value::String(b.value(end)));
            if b.anchor {
                data.insert(format!("copy{i}"), Value::String(b.value(false)));
            }
        }
        (
            text,
            Value::Object(data),
            self.note.value(false),
            self.working_dir.value(at_end(!self.pod_first)),
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every value outside the additions reads back exactly as YAML defines
    /// it, the input's lines are all in the output, and a second run
    /// changes nothing.
    #[test]
    fn generated_yaml_keeps_every_value(s in stream()) {
        let (input, data, note, working_dir) = s.render();
        let config = Injector::default();
        let (pod, cm) = if s.pod_first { (0, 1) } else { (1, 0) };
        let read = parse(&input);
        prop_assert_eq!(&read[cm]["data"], &data, "the reader: {:?}", input);
        prop_assert_eq!(&read[pod]["metadata"]["annotations"]["note"], &Value::String(note.clone()));
        prop_assert_eq!(&read[pod]["spec"]["containers"][0]["workingDir"], &Value::String(working_dir.clone()));

        for output in [Output::Splice, Output::Reformat] {
            let out = inject(&input, "g.yaml", Some(100), &config, output).expect("inject");
            let docs = parse(&out.yaml);
            prop_assert_eq!(&docs[cm]["data"], &data, "{:?}\n{}", output, out.yaml);
            let p = &docs[pod];
            prop_assert_eq!(&p["metadata"]["annotations"]["forcebacklog/status"], "injected");
            prop_assert_eq!(&p["metadata"]["annotations"]["note"], &Value::String(note.clone()));
            prop_assert_eq!(&p["spec"]["containers"][0]["workingDir"], &Value::String(working_dir.clone()));
            prop_assert_eq!(&p["spec"]["containers"][0]["env"][0]["value"], "100");
            let mut stripped = docs.clone();
            let mut original = read.clone();
            stripped.iter_mut().for_each(strip_injection);
            original.iter_mut().for_each(strip_injection);
            prop_assert_eq!(stripped, original);
            let again = inject(&out.yaml, "g.yaml", Some(100), &config, output).expect("inject");
            prop_assert_eq!(&again.yaml, &out.yaml);
            if output == Output::Splice {
                // Only a block scalar that ends the file without a line
                // break cannot have a line added after it.
                let unspliceable = !s.pod_first && !s.final_break && s.working_dir.blank == 0;
                prop_assert_eq!(out.report.normalised, usize::from(unspliceable), "{}", out.yaml);
                if !unspliceable {
                    let kept = lines_kept(&input, &out.yaml);
                    prop_assert!(kept.is_ok(), "{:?}\n{}", kept, out.yaml);
                    if s.crlf {
                        prop_assert!(!out.yaml.replace("\r\n", "").contains('\n'), "{:?}", out.yaml);
                    }
                }
            }
        }
    }
}
