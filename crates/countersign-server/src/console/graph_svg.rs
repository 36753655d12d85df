//! Graphs drawn as SVG: laid out by layout-rs (a Sugiyama-style layered layout of directed
//! graphs, pure Rust), drawn by a render backend of ours that writes classes instead of
//! colours and inline `<style>`, so the drawing follows the page's theme and the strict
//! Content-Security-Policy (no inline style) holds.

use layout::core::base::Orientation;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;
use maud::{Markup, PreEscaped};

/// A node to draw: its label and the classes it is drawn with (`touched`, `critical`, …).
pub(crate) struct Node {
    pub label: String,
    pub classes: String,
}

/// Draws `nodes` with `edges` (indexes into `nodes`, from → to), titled `title` for
/// assistive technology; `id` names the drawing (unique on its page). Nothing when there
/// are no nodes.
pub(crate) fn draw(
    id: &str,
    title: &str,
    nodes: &[Node],
    edges: &[(usize, usize)],
) -> Option<Markup> {
    if nodes.is_empty() {
        return None;
    }
    let mut graph = VisualGraph::new(Orientation::TopToBottom);
    let handles: Vec<_> = nodes
        .iter()
        .map(|node| {
            let width = 24.0 + 7.5 * node.label.chars().count() as f64;
            graph.add_node(Element::create_with_properties(
                ShapeKind::new_box(&node.label),
                StyleAttr::simple(),
                Orientation::TopToBottom,
                Point::new(width.max(60.0), 36.0),
                node.classes.clone(),
            ))
        })
        .collect();
    for &(from, to) in edges {
        if let (Some(&a), Some(&b)) = (handles.get(from), handles.get(to))
            && from != to
        {
            graph.add_edge(Arrow::simple(""), a, b);
        }
    }
    let mut svg = Svg::default();
    graph.do_it(false, false, false, &mut svg);
    Some(PreEscaped(svg.finish(id, title)))
}

struct Svg {
    content: String,
    max: Point,
    clips: usize,
}

impl Default for Svg {
    fn default() -> Svg {
        Svg {
            content: String::new(),
            max: Point::zero(),
            clips: 0,
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Svg {
    fn grow(&mut self, point: Point, size: Point) {
        self.max.x = self.max.x.max(point.x + size.x);
        self.max.y = self.max.y.max(point.y + size.y);
    }

    fn finish(self, id: &str, title: &str) -> String {
        let (w, h) = (self.max.x + 10.0, self.max.y + 10.0);
        let id: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-labelledby=\"{id}-title\" \
             width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\">\
             <title id=\"{id}-title\">{}</title>\
             <defs><marker id=\"{id}-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
             markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\">\
             <path class=\"arrow\" d=\"M 0 0 L 10 5 L 0 10 z\"/></marker></defs>{}</svg>",
            escape(title),
            self.content
                .replace("url(#arrowhead)", &format!("url(#{id}-arrow)"))
        )
    }
}

impl RenderBackend for Svg {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        self.grow(xy, size);
        let class = properties.unwrap_or_default();
        self.content.push_str(&format!(
            "<g class=\"node {}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"6\"/></g>",
            escape(&class),
            xy.x,
            xy.y,
            size.x,
            size.y
        ));
    }

    fn draw_line(
        &mut self,
        start: Point,
        stop: Point,
        _look: &StyleAttr,
        _properties: Option<String>,
    ) {
        self.grow(start, Point::zero());
        self.grow(stop, Point::zero());
        self.content.push_str(&format!(
            "<line class=\"edge\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
            start.x, start.y, stop.x, stop.y
        ));
    }

    fn draw_circle(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
    ) {
        self.grow(xy, size);
        self.content.push_str(&format!(
            "<g class=\"node {}\"><ellipse cx=\"{:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\"/></g>",
            escape(&properties.unwrap_or_default()),
            xy.x,
            xy.y,
            size.x / 2.0,
            size.y / 2.0
        ));
    }

    fn draw_text(&mut self, xy: Point, text: &str, _look: &StyleAttr) {
        if text.is_empty() {
            return;
        }
        self.content.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" dominant-baseline=\"middle\">{}</text>",
            xy.x,
            xy.y,
            escape(text)
        ));
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        head: (bool, bool),
        _look: &StyleAttr,
        _properties: Option<String>,
        _text: &str,
    ) {
        if path.len() < 2 {
            return;
        }
        for point in path {
            self.grow(point.0, Point::zero());
            self.grow(point.1, Point::zero());
        }
        let mut d = format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1} ",
            path[0].0.x,
            path[0].0.y,
            path[0].1.x,
            path[0].1.y,
            path[1].0.x,
            path[1].0.y,
            path[1].1.x,
            path[1].1.y
        );
        for point in path.iter().skip(2) {
            d.push_str(&format!(
                "S {:.1} {:.1}, {:.1} {:.1} ",
                point.0.x, point.0.y, point.1.x, point.1.y
            ));
        }
        let dash = if dashed {
            " stroke-dasharray=\"5,5\""
        } else {
            ""
        };
        let end = if head.1 {
            " marker-end=\"url(#arrowhead)\""
        } else {
            ""
        };
        self.content.push_str(&format!(
            "<path class=\"edge\" d=\"{}\"{dash}{end}/>",
            d.trim_end()
        ));
    }

    fn create_clip(&mut self, _xy: Point, _size: Point, _rounded_px: usize) -> ClipHandle {
        self.clips += 1;
        self.clips
    }
}
