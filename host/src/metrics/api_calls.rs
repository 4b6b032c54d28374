//! What the console keeps of a plugin's OpenIM API calls: bounded, whatever the plugin does.

use super::ApiOutcome;

/// One OpenIM API call a plugin made during a call, for the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    /// The operation's name in the interface.
    pub operation: &'static str,
    /// What it came to.
    pub outcome: ApiOutcome,
}

/// OpenIM API calls kept one by one for a plugin's turn; the rest are only counted.
pub const API_CALLS_SHOWN: usize = 20;

/// The OpenIM API calls of a plugin's turn, as the console keeps them: the first
/// [`API_CALLS_SHOWN`] in order, and every call counted by outcome. Its size is fixed whatever
/// the plugin does: a plugin looping on a refused call for its whole deadline (millions of calls)
/// costs the history what one that made twenty does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiCallNotes {
    /// The first calls, in order (at most [`API_CALLS_SHOWN`]).
    pub first: Vec<ApiCall>,
    /// Every call, the first ones included, by outcome (indexed as [`ApiOutcome::ALL`]).
    counts: [u64; ApiOutcome::ALL.len()],
}

impl ApiCallNotes {
    /// Notes one call.
    pub fn note(&mut self, call: ApiCall) {
        self.counts[call.outcome.index()] += 1;
        if self.first.len() < API_CALLS_SHOWN {
            self.first.push(call);
        }
    }

    /// Adds `later`'s calls after these.
    pub fn append(&mut self, later: &mut ApiCallNotes) {
        let room = API_CALLS_SHOWN.saturating_sub(self.first.len());
        self.first.extend(later.first.drain(..).take(room));
        for (count, more) in self.counts.iter_mut().zip(later.counts) {
            *count += more;
        }
        later.counts = Default::default();
    }

    /// Every call noted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The calls noted with each outcome that came up, in [`ApiOutcome::ALL`]'s order.
    pub fn by_outcome(&self) -> impl Iterator<Item = (ApiOutcome, u64)> + '_ {
        ApiOutcome::ALL
            .into_iter()
            .zip(self.counts)
            .filter(|(_, count)| *count > 0)
    }
}

/// The OpenIM API calls of one plugin call, gathered as they happen.
pub type ApiCalls = std::sync::Mutex<ApiCallNotes>;

#[cfg(test)]
mod tests {
    use super::*;

    fn call(outcome: ApiOutcome) -> ApiCall {
        ApiCall {
            operation: "kick-group-members",
            outcome,
        }
    }

    #[test]
    fn notes_keep_the_first_calls_and_count_every_one() {
        let mut notes = ApiCallNotes::default();
        notes.note(call(ApiOutcome::Ok));
        for _ in 0..1_000_000 {
            notes.note(call(ApiOutcome::RateLimited));
        }
        assert_eq!(notes.first.len(), API_CALLS_SHOWN);
        assert_eq!(notes.first[0].outcome, ApiOutcome::Ok);
        assert_eq!(notes.total(), 1_000_001);
        let counts: Vec<_> = notes.by_outcome().collect();
        assert_eq!(
            counts,
            [(ApiOutcome::Ok, 1), (ApiOutcome::RateLimited, 1_000_000)]
        );
    }

    #[test]
    fn appended_notes_stay_in_order_and_bounded() {
        let mut turn = ApiCallNotes::default();
        for _ in 0..(API_CALLS_SHOWN - 2) {
            turn.note(call(ApiOutcome::Ok));
        }
        let mut later = ApiCallNotes::default();
        for _ in 0..5 {
            later.note(call(ApiOutcome::CallCap));
        }
        turn.append(&mut later);
        assert_eq!(turn.first.len(), API_CALLS_SHOWN);
        assert_eq!(turn.first[API_CALLS_SHOWN - 1].outcome, ApiOutcome::CallCap);
        assert_eq!(turn.total(), API_CALLS_SHOWN as u64 + 3);
        assert_eq!(later, ApiCallNotes::default(), "what was appended is taken");
    }

    #[test]
    fn every_outcome_has_its_own_count() {
        for (i, outcome) in ApiOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome.index(), i, "{}", outcome.as_str());
        }
    }
}
