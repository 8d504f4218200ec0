"""The offline paired corpus: score sources (`sources`) rendered to MIDI + audio (`build`), with drums (`drums`)."""
