"""The pipeline core: a project's resources opened (:mod:`.workspace`), the run session (lock, run id, crash
markers, stages under the retry policy, observers, the record: :mod:`.session`) and what runs in one — a run
(:mod:`.runner`), a backfill (:mod:`.backfill`), the warehouse stage (:mod:`.warehouse`), continuous mode
(:mod:`.watch`) — with the event log (:mod:`.events`), the observers' interface (:mod:`.hooks`) and progress
(:mod:`.progress`)."""
