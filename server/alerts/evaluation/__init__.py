"""Alert evaluation: rules over step records, fed one step at a time, pure but for engine.py.

    rules.py, rulefile.py      the rule model, the defaults, the server's YAML rule file
    detectors.py, entropy.py   the built-in detectors (detector_base.py: what they share)
    machine.py                 the state machine of one (run, rule, labels) fingerprint
    silencing.py               silence matchers
    engine.py                  reads and writes the states of one batch in its transaction
"""
