"""A delete the user just did reads as a success ("Deleted x."); an address naming a deployment deleted
elsewhere (a reload, a shared link, a deployment made again and then deleted from the CLI) still warns."""

from __future__ import annotations

import pytest

from dashboard.common import deployment_gone, verbatim

from .test_dashboard import app, backend_deck, button, dashboard_home, deploy, on_page, select, url_param


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    """A home with sklearn_mnist:1, new deployments on the local runtime, cleaned up after."""
    yield from dashboard_home(trained_home, tmp_path, monkeypatch)


def delete_here(at, name: str) -> None:
    """Delete… then "Yes, delete NAME" on the Deploy page, as a user deletes."""
    button(at, "Delete…").click().run()
    button(at, f"Yes, delete {name}").click().run()
    assert not at.exception, at.exception


def successes(at) -> list[str]:
    return [s.value for s in at.success]


def test_yes_delete_says_deleted_as_a_success_and_a_reload_of_its_address_warns(home):
    at = app()
    name = deploy(at, "tp-deleted")
    delete_here(at, name)
    assert successes(at) == [verbatim("Deleted tp-deleted.")] and not at.warning
    assert url_param(at, "deployment") == name  # still named: a reload never opens another by itself
    assert any("No deployment yet" in i.value for i in at.info)
    at.run()  # still said on the next rerun of the same session (a Refresh, say)
    assert successes(at) == [verbatim("Deleted tp-deleted.")] and not at.warning

    reloaded = on_page("views/deploy.py", deployment=name)  # a new session: it did not delete it
    assert [w.value for w in reloaded.warning] == [deployment_gone(name)] and not reloaded.success


def test_a_name_made_again_and_deleted_elsewhere_warns_even_in_the_session_that_deleted_it_first(home):
    at = app()
    kept = deploy(at, "tp-kept")
    name = deploy(at, "tp-again")
    delete_here(at, name)
    assert successes(at) == [verbatim("Deleted tp-again.")]
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), name, timeout=180)  # made again (CLI)
    at.run()
    assert select(at, "Deployment").value == name and not at.success and not at.warning
    deck.deployments.delete(name)  # and deleted from elsewhere: this session did not do it
    at.run()
    assert [w.value for w in at.warning] == [deployment_gone(name)] and not successes(at)
    assert select(at, "Deployment").value is None and kept in select(at, "Deployment").options
