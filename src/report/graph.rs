//! `clnrm graph` as text: tests → the templates and libraries their render read →
//! their services → images, build contexts and volumes, drawn as Graphviz DOT,
//! Mermaid or JSON. Built from the records `clnrm dev` chooses tests with (the render
//! record and the plan); this module only draws, it reads nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use clnrm_plan::{ImageSource, TestPlan};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Test,
    /// A test that did not validate: its dependencies are unknown.
    InvalidTest,
    Template,
    /// A macro library (`*.tera` imported, or clnrm's built-in one).
    Library,
    /// Any other file a render read (an include, a data file).
    File,
    Service,
    Image,
    BuildContext,
    Volume,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphNode {
    pub id: String,
    pub kind: NodeKind,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    /// `reads`, `uses`, `runs`, `built_from`, `mounts`.
    pub kind: &'static str,
}

/// The graph, in a stable order (by id), so equal projects draw equal text.
#[derive(Debug, Default, Serialize)]
pub struct DependencyGraph {
    nodes: BTreeMap<String, GraphNode>,
    edges: BTreeSet<GraphEdge>,
}

impl DependencyGraph {
    /// A test that validated: the files its render read and, when it planned, its
    /// services and what they come from.
    pub fn add_test(
        &mut self,
        identity: &str,
        name: &str,
        reads: &[String],
        plan: Option<&TestPlan>,
    ) {
        let test = self.node(
            format!("test:{identity}"),
            NodeKind::Test,
            format!("{name}\n{identity}"),
        );
        for path in reads.iter().filter(|path| *path != identity) {
            let kind = if path.starts_with("builtin:") || path.ends_with(".tera") {
                if path.contains(".clnrm.toml") {
                    NodeKind::Template
                } else {
                    NodeKind::Library
                }
            } else {
                NodeKind::File
            };
            let file = self.node(format!("file:{path}"), kind, path.clone());
            self.edge(&test, &file, "reads");
        }
        for container in plan.map(|p| p.containers.as_slice()).unwrap_or_default() {
            let service = self.node(
                format!("service:{identity}#{}", container.service),
                NodeKind::Service,
                container.service.clone(),
            );
            self.edge(&test, &service, "uses");
            let (id, kind, label, edge) = match &container.image {
                ImageSource::Reference { reference } => (
                    format!("image:{reference}"),
                    NodeKind::Image,
                    reference.clone(),
                    "runs",
                ),
                ImageSource::Build {
                    context,
                    dockerfile,
                } => (
                    format!("build:{context}/{dockerfile}"),
                    NodeKind::BuildContext,
                    format!("{context}/ ({dockerfile})"),
                    "built_from",
                ),
            };
            let image = self.node(id, kind, label);
            self.edge(&service, &image, edge);
            for volume in &container.volumes {
                let mounted = self.node(
                    format!("volume:{}", volume.host_path),
                    NodeKind::Volume,
                    volume.host_path.clone(),
                );
                self.edge(&service, &mounted, "mounts");
            }
        }
    }

    /// A test that did not validate: a node of its own, nothing known below it.
    pub fn add_invalid_test(&mut self, identity: &str) {
        self.node(
            format!("test:{identity}"),
            NodeKind::InvalidTest,
            format!("{identity}\n(invalid)"),
        );
    }

    fn node(&mut self, id: String, kind: NodeKind, label: String) -> String {
        self.nodes.entry(id.clone()).or_insert_with(|| GraphNode {
            id: id.clone(),
            kind,
            label,
        });
        id
    }

    fn edge(&mut self, from: &str, to: &str, kind: &'static str) {
        self.edges.insert(GraphEdge {
            from: from.to_string(),
            to: to.to_string(),
            kind,
        });
    }

    pub fn nodes(&self) -> impl Iterator<Item = &GraphNode> {
        self.nodes.values()
    }

    pub fn edges(&self) -> impl Iterator<Item = &GraphEdge> {
        self.edges.iter()
    }

    pub fn to_json(&self) -> String {
        let nodes: Vec<&GraphNode> = self.nodes.values().collect();
        let edges: Vec<&GraphEdge> = self.edges.iter().collect();
        serde_json::to_string_pretty(&serde_json::json!({ "nodes": nodes, "edges": edges }))
            .expect("the graph serializes")
    }

    pub fn to_dot(&self) -> String {
        let mut out = String::from(
            "digraph clnrm {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
        );
        for node in self.nodes.values() {
            let (shape, style) = match node.kind {
                NodeKind::Test => ("box", "filled\", fillcolor=\"#ddf4ff"),
                NodeKind::InvalidTest => ("box", "filled\", fillcolor=\"#ffebe9"),
                NodeKind::Template | NodeKind::Library | NodeKind::File => ("note", "solid"),
                NodeKind::Service => ("ellipse", "solid"),
                NodeKind::Image => ("cylinder", "solid"),
                NodeKind::BuildContext | NodeKind::Volume => ("folder", "solid"),
            };
            let _ = writeln!(
                out,
                "  {} [label={}, shape={shape}, style=\"{style}\"];",
                dot_string(&node.id),
                dot_string(&node.label)
            );
        }
        for edge in &self.edges {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                dot_string(&edge.from),
                dot_string(&edge.to),
                dot_string(edge.kind)
            );
        }
        out.push_str("}\n");
        out
    }

    pub fn to_mermaid(&self) -> String {
        // Mermaid ids are plain words: number the nodes, keep the names as labels.
        let ids: BTreeMap<&str, String> = self
            .nodes
            .keys()
            .enumerate()
            .map(|(i, id)| (id.as_str(), format!("n{i}")))
            .collect();
        let mut out = String::from("flowchart LR\n");
        for node in self.nodes.values() {
            let label = mermaid_label(&node.label);
            let shape = match node.kind {
                NodeKind::Test | NodeKind::InvalidTest => format!("[\"{label}\"]"),
                NodeKind::Service => format!("([\"{label}\"])"),
                NodeKind::Image => format!("[(\"{label}\")]"),
                _ => format!("[/\"{label}\"/]"),
            };
            let _ = writeln!(out, "  {}{shape}", ids[node.id.as_str()]);
        }
        for edge in &self.edges {
            let _ = writeln!(
                out,
                "  {} -->|{}| {}",
                ids[edge.from.as_str()],
                edge.kind,
                ids[edge.to.as_str()]
            );
        }
        out
    }
}

fn dot_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn mermaid_label(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', "<br/>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_shared_by_two_templates_is_one_node_with_two_readers() {
        let mut graph = DependencyGraph::default();
        let reads = |t: &str| vec![t.to_string(), "tests/lib/_checks.tera".to_string()];
        graph.add_test(
            "tests/a.clnrm.toml.tera",
            "a",
            &reads("tests/a.clnrm.toml.tera"),
            None,
        );
        graph.add_test(
            "tests/b.clnrm.toml.tera",
            "b",
            &reads("tests/b.clnrm.toml.tera"),
            None,
        );
        graph.add_invalid_test("tests/c \"q\".clnrm.toml");
        let library = "file:tests/lib/_checks.tera";
        assert_eq!(
            graph
                .nodes()
                .filter(|n| n.kind == NodeKind::Library)
                .count(),
            1
        );
        assert_eq!(graph.edges().filter(|e| e.to == library).count(), 2);
        assert!(graph
            .to_dot()
            .contains("\"test:tests/c \\\"q\\\".clnrm.toml\""));
        let mermaid = graph.to_mermaid();
        assert!(mermaid.starts_with("flowchart LR\n"));
        assert!(mermaid.contains("-->|reads|"));
        let json: serde_json::Value = serde_json::from_str(&graph.to_json()).unwrap();
        assert_eq!(json["nodes"].as_array().unwrap().len(), 4);
    }
}
