//! The keyboard: which key does what. Pure, so the mapping is tested without a terminal.

use perseus_model::{FaultKind, HostArg, HostName};

/// What a key asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Act on the selected host through chaos.
    Fault(FaultKind),
    /// Select the host the next action hits.
    Select(HostArg),
    /// Undo every fault in force (and remove every network rule).
    HealAll,
    Quit,
    None,
}

/// `hosts` are the hosts the digit keys select, in order.
pub fn command(key: char, hosts: &[HostName]) -> Command {
    match key {
        'k' => Command::Fault(FaultKind::Kill),
        's' => Command::Fault(FaultKind::Start),
        'i' => Command::Fault(FaultKind::Isolate),
        'h' => Command::Fault(FaultKind::Heal),
        'p' => Command::Fault(FaultKind::Pause),
        'r' => Command::Fault(FaultKind::Resume),
        'H' => Command::HealAll,
        'l' => Command::Select(HostArg::Leader),
        'q' => Command::Quit,
        d @ '1'..='9' => {
            let i = d as usize - '1' as usize;
            hosts
                .get(i)
                .map_or(Command::None, |h| Command::Select(HostArg::Host(*h)))
        }
        _ => Command::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_select_hosts_and_letters_act() {
        let hosts: Vec<HostName> = ["a1", "a2", "a3"]
            .iter()
            .map(|h| h.parse().unwrap())
            .collect();
        assert_eq!(
            command('2', &hosts),
            Command::Select(HostArg::Host(hosts[1]))
        );
        assert_eq!(command('4', &hosts), Command::None);
        assert_eq!(command('k', &hosts), Command::Fault(FaultKind::Kill));
        assert_eq!(command('H', &hosts), Command::HealAll);
        assert_eq!(command('l', &hosts), Command::Select(HostArg::Leader));
        assert_eq!(command('x', &hosts), Command::None);
    }
}
