"""The release engine: pure decisions (verdicts, canary sizing, the state machine) and their execution."""
