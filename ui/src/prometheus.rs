//! Just enough of the Prometheus text exposition format to read windsock's own `/metrics`:
//! samples with labels and a value (comments, and timestamps after the value, are skipped).

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// Every sample of `text`; lines that are not samples are skipped, not fatal, because a
/// health page should show what it can read.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remainder;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y\"z"}` into labels and what follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, after_key) = text.split_once('=')?;
        let mut chars = after_key.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_string(), value);
        text = &after_key[1 + end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_with_labels_escapes_and_timestamps() {
        let text = "# HELP windsock_received_total events in\n\
                    # TYPE windsock_received_total counter\n\
                    windsock_received_total{service=\"indexer\"} 42\n\
                    windsock_errors_total{service=\"collector\",kind=\"http_429\"} 3 1700000000\n\
                    windsock_bus_lag{service=\"indexer\"} 1.5e1\n\
                    odd{msg=\"a \\\"quoted\\\" } brace\"} 1\n\
                    no_labels 7\n\
                    garbage line here\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 5, "{samples:?}");
        assert_eq!(samples[0].name, "windsock_received_total");
        assert_eq!(samples[0].label("service"), Some("indexer"));
        assert_eq!(samples[0].value, 42.0);
        assert_eq!(samples[1].label("kind"), Some("http_429"));
        assert_eq!(samples[1].value, 3.0);
        assert_eq!(samples[2].value, 15.0);
        assert_eq!(samples[3].label("msg"), Some("a \"quoted\" } brace"));
        assert_eq!(samples[4].name, "no_labels");
        assert!(samples[4].labels.is_empty());
    }
}
