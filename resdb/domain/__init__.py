"""Pure domain rules shared by resdb and matcher (vocabulary, text normalisation, schedules, travel):
no Flask, no database, no index; the purity test in tests/matcher covers this package with matcher/."""
