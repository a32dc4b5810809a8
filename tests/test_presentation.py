"""Presentation mode under AppTest: on from the address or the sidebar toggle, kept while moving between
pages, and technical detail (addresses, runtimes, home, the request console, snippets) hidden."""

from dashboard.common import PRESENT_PARAM

from .test_dashboard import app, backend_deck, home, url_param  # noqa: F401 (fixture)


def test_a_link_opens_in_presentation_mode_which_hides_technical_detail(home):  # noqa: F811 (the fixture above)
    deck = backend_deck(home)
    deployed = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "present-me", timeout=180)
    uri = deployed.scoring_uri
    normal = app(deployment="present-me")
    normal.switch_page("views/test.py").run()
    assert any(uri in c.value for c in normal.caption) and any(s.value == "Request console" for s in normal.subheader)
    assert [t.value for t in normal.sidebar.toggle] == [False]

    at = app(**{PRESENT_PARAM: "1"})
    assert [t.value for t in at.sidebar.toggle] == [True]
    assert not any("**Home**" in c.value or "**Runtimes**" in c.value for c in at.sidebar.caption)
    assert any("[data-testid=\"stMetricValue\"] * {font-size: 3.2rem !important;" in h.proto.body for h in at.get("html"))
    at.switch_page("views/test.py").run()  # moving to another page drops the query: the mode stays, and the URL says so
    assert not at.exception
    assert url_param(at, PRESENT_PARAM) == "1"
    assert not any(uri in c.value for c in at.caption)
    assert not any(s.value in ("Request console", "The raw request") for s in at.subheader)
    assert not [c for c in at.code if c.value.startswith("curl ")]

    at.sidebar.toggle[0].set_value(False).run()
    assert PRESENT_PARAM not in at.query_params
    assert any(s.value == "Request console" for s in at.subheader)


def test_the_deploy_and_models_pages_hide_addresses_hashes_logs_and_keys_while_presenting(home):  # noqa: F811
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "present-deploy", timeout=180)
    for present, shown in ((False, True), (True, False)):
        at = app(**({PRESENT_PARAM: "1"} if present else {}))
        at.switch_page("views/deploy.py").run()
        assert not at.exception
        table = at.dataframe[0].value
        assert ("scoring URI" in table.columns) is shown and "present-deploy" in table["name"].tolist()
        assert any(b.label == "Logs" for b in at.button) is shown and any(b.label == "Keys" for b in at.button) is shown
        assert any("sha256" in c.value for c in at.caption) is shown
        at.switch_page("views/models.py").run()
        assert ("model sha256" in at.dataframe[0].value.columns) is shown
