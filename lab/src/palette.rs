//! The colours of a run's pictures, one table for both drawings of them: the PNGs plotters
//! draws (`plot`) and the SVG charts of report.html (`html`). A node keeps its colour and a
//! fault span its shade from one picture to the other.

use crate::analysis::FaultKind;

/// An sRGB colour and its opacity (1 for a line, below for a shaded span).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shade {
    pub rgb: (u8, u8, u8),
    pub alpha: f64,
}

impl Shade {
    const fn solid(r: u8, g: u8, b: u8) -> Shade {
        Shade {
            rgb: (r, g, b),
            alpha: 1.0,
        }
    }

    const fn see_through(rgb: Shade, alpha: f64) -> Shade {
        Shade {
            rgb: rgb.rgb,
            alpha,
        }
    }

    /// As CSS: `#1f77b4` when solid, else `rgba(214,39,40,0.15)`.
    pub fn css(self) -> String {
        let (r, g, b) = self.rgb;
        if self.alpha >= 1.0 {
            format!("#{r:02x}{g:02x}{b:02x}")
        } else {
            format!("rgba({r},{g},{b},{})", self.alpha)
        }
    }
}

const BLUE: Shade = Shade::solid(31, 119, 180);
const ORANGE: Shade = Shade::solid(255, 127, 14);
const GREEN: Shade = Shade::solid(44, 160, 44);
const RED: Shade = Shade::solid(214, 39, 40);
const GREY: Shade = Shade::solid(128, 128, 128);
const AMBER: Shade = Shade::solid(255, 165, 0);

/// Node i's line (n1 blue, n2 orange, ...), repeating after six.
const NODES: [Shade; 6] = [
    BLUE,
    ORANGE,
    GREEN,
    Shade::solid(148, 103, 189),
    Shade::solid(140, 86, 75),
    Shade::solid(227, 119, 194),
];

/// The line of node `i` (0-based).
pub fn node(i: usize) -> Shade {
    NODES[i % NODES.len()]
}

/// The latency lines: p50, p90, p99 and max.
pub const P50: Shade = BLUE;
pub const P90: Shade = GREEN;
pub const P99: Shade = ORANGE;
pub const MAX: Shade = RED;

/// The shade of a fault span, by what the fault does to a host: red takes it down or its
/// data, blue cuts it off, grey freezes it, amber degrades its network.
pub fn fault(kind: &FaultKind) -> Shade {
    match kind {
        FaultKind::Kill
        | FaultKind::Restart
        | FaultKind::Amnesia
        | FaultKind::Wipe
        | FaultKind::Rollback
        | FaultKind::Truncate(_)
        | FaultKind::KillMachine => Shade::see_through(RED, 0.15),
        FaultKind::Isolate
        | FaultKind::IsolateInbound
        | FaultKind::IsolateOutbound
        | FaultKind::CutClients
        | FaultKind::Partition(_) => Shade::see_through(BLUE, 0.13),
        FaultKind::Pause => Shade::see_through(GREY, 0.22),
        FaultKind::Loss(_) | FaultKind::Limit(_) | FaultKind::Delay(..) => {
            Shade::see_through(AMBER, 0.18)
        }
        // The undoing actions open no window.
        _ => Shade::see_through(GREY, 0.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_forms() {
        assert_eq!(node(0).css(), "#1f77b4");
        assert_eq!(node(6), node(0));
        assert_eq!(fault(&FaultKind::Kill).css(), "rgba(214,39,40,0.15)");
        assert_eq!(fault(&FaultKind::Pause).css(), "rgba(128,128,128,0.22)");
    }
}
