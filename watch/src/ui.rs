//! Rendering: one pure function from a [`View`] to a frame, so that the screen can be tested
//! on recorded input with ratatui's test backend.
//!
//! Layout, top to bottom: a status line (time, throughput, latency, the checker's verdict),
//! the cluster chart, one chart per node, a table of the current second next to the faults in
//! force, the last message and the key help. A terminal too small for the charts keeps the
//! status line, the table and the help; one too small for anything says so.

use perseus_model::HostArg;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker as Dots;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Line as Segment};
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;

use crate::state::{Marker, State};

/// Seconds of history in the charts.
pub const WINDOW_S: u64 = 120;
/// The shortest time axis, so that the first seconds do not fill the whole width.
const MIN_AXIS_S: f64 = 60.0;
/// Below this the screen only says it is too small.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;

/// Everything drawn, borrowed from the app.
pub struct View<'a> {
    pub state: &'a State,
    /// The host the action keys act on.
    pub selected: HostArg,
    /// Where the run is kept.
    pub dir: &'a str,
    pub now_ms: i64,
    /// The last message (an action's outcome, the load's end).
    pub message: &'a str,
    /// A question waiting for y/n, shown instead of the help line.
    pub prompt: Option<&'a str>,
}

pub const HELP: &str =
    "1-3,l:host k:kill s:start i:isolate h:heal p:pause r:resume H:heal all q:quit";

pub fn draw(frame: &mut Frame, view: &View) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal {}x{} is too small: need {}x{}",
            area.width, area.height, MIN_WIDTH, MIN_HEIGHT
        );
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let nodes = view.state.nodes().max(1);
    let table_h = nodes as u16 + 3;
    let [header, charts, bottom, message, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(table_h),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(status_line(view), header);
    draw_charts(frame, view, charts, nodes);
    let [table, faults] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(bottom);
    frame.render_widget(node_table(view, nodes), table);
    frame.render_widget(fault_panel(view), faults);
    frame.render_widget(Paragraph::new(view.message.to_string()), message);
    let help_line = match view.prompt {
        Some(q) => Line::from(Span::styled(
            q.to_string(),
            Style::default().add_modifier(Modifier::BOLD),
        )),
        None => Line::from(HELP),
    };
    frame.render_widget(Paragraph::new(help_line), help);
}

fn status_line(view: &View) -> Line<'static> {
    let s = view.state;
    let t = s.last_second().map_or(0, |x| x.second);
    let cluster = s.last_second().map_or(0, |x| x.cluster);
    let lat = s.latency();
    let ms = |us: Option<u64>| us.map_or("-".to_string(), |u| format!("{:.1}", u as f64 / 1000.0));
    let verdict = if s.violations == 0 {
        Span::styled("violations: 0", Style::default().fg(Color::Green))
    } else {
        Span::styled(
            format!("VIOLATIONS: {}", s.violations),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        )
    };
    Line::from(vec![
        Span::styled(
            "Perseus watch ",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            "t={t}s  cluster {cluster}/s  p50 {} p99 {} ms  ",
            ms(lat.p50),
            ms(lat.p99)
        )),
        verdict,
        Span::raw(format!("  {}", view.dir)),
    ])
}

fn draw_charts(frame: &mut Frame, view: &View, area: Rect, nodes: usize) {
    if area.height < 4 {
        return;
    }
    let last = view.state.last_second().map_or(0, |s| s.second);
    // The axis grows with the run up to the window, then scrolls.
    let x1 = (last as f64).max(MIN_AXIS_S);
    let x0 = (x1 - WINDOW_S as f64).max(0.0);
    // Node charts side by side under the cluster chart when there is room for both.
    let show_nodes = area.height >= 10 && area.width >= 60;
    let (cluster_area, nodes_area) = if show_nodes {
        let [c, n] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
        (c, Some(n))
    } else {
        (area, None)
    };
    let cluster = view.state.series(None, WINDOW_S);
    frame.render_widget(
        chart(
            "cluster it/s".into(),
            &cluster,
            &view.state.markers,
            x0,
            x1,
            Color::Cyan,
        ),
        cluster_area,
    );
    if let Some(nodes_area) = nodes_area {
        let columns = Layout::default()
            .direction(Direction::Horizontal)
            .constraints(vec![Constraint::Ratio(1, nodes as u32); nodes])
            .split(nodes_area);
        for (n, col) in columns.iter().enumerate() {
            let points = view.state.series(Some(n), WINDOW_S);
            let now = points.last().map_or(0.0, |p| p.1);
            frame.render_widget(
                chart(
                    format!("n{} {now:.0}/s", n + 1),
                    &points,
                    &view.state.markers,
                    x0,
                    x1,
                    Color::Yellow,
                ),
                *col,
            );
        }
    }
}

/// A line chart of `points` over `[x0, x1]` with a vertical line and label per marker.
fn chart<'a>(
    title: String,
    points: &'a [(f64, f64)],
    markers: &'a [Marker],
    x0: f64,
    x1: f64,
    color: Color,
) -> Canvas<'a, impl Fn(&mut ratatui::widgets::canvas::Context) + 'a> {
    let top = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    Canvas::default()
        .block(Block::bordered().title(format!("{title} (max {:.0})", top / 1.15)))
        .marker(Dots::Braille)
        .x_bounds([x0, x1])
        .y_bounds([0.0, top])
        .paint(move |ctx| {
            for m in markers.iter().filter(|m| m.at_s >= x0 && m.at_s <= x1) {
                let c = if m.ok { Color::Red } else { Color::DarkGray };
                ctx.draw(&Segment::new(m.at_s, 0.0, m.at_s, top, c));
            }
            for pair in points.windows(2) {
                ctx.draw(&Segment::new(
                    pair[0].0, pair[0].1, pair[1].0, pair[1].1, color,
                ));
            }
            if let [only] = points {
                ctx.draw(&Segment::new(only.0, only.1, only.0, only.1, color));
            }
            ctx.layer();
            for m in markers.iter().filter(|m| m.at_s >= x0 && m.at_s <= x1) {
                ctx.print(
                    m.at_s,
                    top,
                    Span::styled(m.label.clone(), Style::default().fg(Color::Red)),
                );
            }
        })
}

fn node_table<'a>(view: &View, nodes: usize) -> Table<'a> {
    let last = view.state.last_second();
    let rows = (0..nodes).map(|n| {
        let ok = last.and_then(|s| s.nodes.get(n)).copied().unwrap_or(0);
        let style = if ok == 0 && last.is_some() {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        Row::new(vec![
            format!("n{}", n + 1),
            ok.to_string(),
            view.state.errors_text(n),
        ])
        .style(style)
    });
    Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec!["node", "it/s", "errors (this second)"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::bordered().title(match last {
        Some(s) => format!("second {}", s.second),
        None => "waiting for the load".to_string(),
    }))
}

fn fault_panel(view: &View) -> Paragraph<'static> {
    let active = view.state.active_faults(view.now_ms);
    let lines: Vec<Line> = if active.is_empty() {
        vec![Line::from("no fault in force")]
    } else {
        active
            .into_iter()
            .map(|(host, kind, age)| {
                Line::from(Span::styled(
                    format!("{host} {kind} for {age}s"),
                    Style::default().fg(Color::Red),
                ))
            })
            .collect()
    };
    Paragraph::new(lines)
        .block(Block::bordered().title(format!("faults · keys act on {}", view.selected)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use perseus_model::load::Record;
    use perseus_model::ChaosEvent;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    const DATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lab/tests/data/kill-and-isolate"
    );

    /// The recorded run replayed up to (and including) second `upto`.
    fn replay(upto: u64) -> State {
        let mut state = State::default();
        let load = std::fs::read_to_string(format!("{DATA}/load.jsonl")).unwrap();
        for line in load.lines() {
            let record: Record = serde_json::from_str(line).unwrap();
            if matches!(&record, Record::Second(s) if s.second > upto) {
                break;
            }
            state.apply_record(record);
        }
        let start = state.start.as_ref().unwrap().unix_ms;
        let events = std::fs::read_to_string(format!("{DATA}/events.jsonl")).unwrap();
        for line in events.lines() {
            let event: ChaosEvent = serde_json::from_str(line).unwrap();
            if event.begin_unix_ms <= start + upto as i64 * 1000 {
                state.apply_event(event);
            }
        }
        state
    }

    fn render(state: &State, w: u16, h: u16, now_ms: i64) -> String {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal
            .draw(|f| {
                draw(
                    f,
                    &View {
                        state,
                        selected: HostArg::Host("a1".parse().unwrap()),
                        dir: "results/x",
                        now_ms,
                        message: "",
                        prompt: None,
                    },
                )
            })
            .unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn while_a1_is_killed_n1_shows_zero_and_the_kill_is_marked() {
        let state = replay(15);
        let start = state.start.as_ref().unwrap().unix_ms;
        let screen = render(&state, 100, 30, start + 15_000);
        assert!(screen.contains("n1 0/s"), "{screen}");
        assert!(!screen.contains("n2 0/s"), "{screen}");
        assert!(screen.contains("kill a1"), "{screen}");
        assert!(screen.contains("a1 kill for"), "{screen}");
        assert!(screen.contains("violations: 0"), "{screen}");
        assert!(screen.contains("second 15"), "{screen}");
    }

    #[test]
    fn after_the_start_the_fault_panel_is_empty_and_n1_serves() {
        let state = replay(25);
        let start = state.start.as_ref().unwrap().unix_ms;
        let screen = render(&state, 100, 30, start + 25_000);
        assert!(screen.contains("no fault in force"), "{screen}");
        assert!(!screen.contains("n1 0/s"), "{screen}");
        assert!(screen.contains("start a1"), "{screen}");
    }

    #[test]
    fn fits_80x24_and_degrades_when_smaller() {
        let state = replay(15);
        let start = state.start.as_ref().unwrap().unix_ms;
        let screen = render(&state, 80, 24, start + 15_000);
        assert!(screen.contains("n3"), "{screen}");
        assert!(screen.contains("q:quit"), "{screen}");
        assert!(screen.contains("keys act on a1"), "{screen}");
        // Too narrow for node charts: the cluster chart and the table remain.
        let narrow = render(&state, 50, 20, start + 15_000);
        assert!(narrow.contains("cluster it/s"), "{narrow}");
        assert!(narrow.contains("n1"), "{narrow}");
        let tiny = render(&state, 30, 8, start + 15_000);
        assert!(tiny.contains("too small"), "{tiny}");
    }
}
