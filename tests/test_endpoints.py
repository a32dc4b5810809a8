"""Endpoints (issue 25): one stable address in front of several deployments, routed by a real nginx: the split
checked as a split; answers naming their deployment and request; the proportions over 2,000 requests within a
binomial bound; no failed request under load while the split changes 10 times and a deployment is replaced; rollback
and its history; refusals that change nothing; a killed proxy started again on the same port; the CLI."""

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from backend.errors import DeploymentNotFoundError, EndpointError
from backend.routing.nginx import Proxy, Target, endpoint_config
from backend.routing.records import EndpointRecord, Split, checked_split, parse_weights
from backend.services import endpoints, managing
from backend.services.endpoints import _moved

from .test_cli import cli

BLANK = {"data": [[0.0] * 784]}


# --- the split, as pure logic --------------------------------------------------------------------------------------

def test_a_split_is_whole_percentages_summing_to_100_for_at_most_8_deployments():
    assert parse_weights(["a=90", "b=10"]) == {"a": 90, "b": 10}
    assert parse_weights(["a=100", "b=0"]) == {"a": 100, "b": 0}  # 0: behind it, carrying none
    for pairs, said in ((["a=90", "b=20"], "sum to 110, not 100"), (["a=90"], "sum to 90"),
                        (["a=50", "a=50"], "'a' is given twice"), (["a=50.5", "b=49.5"], "is not DEPLOYMENT=PERCENT"),
                        (["a"], "is not DEPLOYMENT=PERCENT"), (["a=-10", "b=110"], "is not DEPLOYMENT=PERCENT"),
                        ([], "names at least one deployment")):
        with pytest.raises(EndpointError, match=said):
            parse_weights(pairs)
    with pytest.raises(EndpointError, match="at most 8 deployments"):
        checked_split({f"d{k}": 100 if k == 0 else 0 for k in range(9)})
    assert _moved({"b": 30, "c": 10}, 60) == {"b": 75, "c": 25}  # in proportion, still summing to 100
    assert _moved({"b": 1, "c": 1, "d": 1}, 97) == {"b": 34, "c": 33, "d": 33}
    assert _moved({"b": 0, "c": 0}, 100) == {"b": 100, "c": 0}


def test_the_proxys_configuration_routes_by_request_id_and_sends_each_deployment_its_own_key():
    record = EndpointRecord("shop", 41000, (Split((("v1", 70), ("v2", 30), ("old", 0)), "ann", "t"),), "t")
    targets = {"v1": Target("v1", "127.0.0.1:5001", None), "v2": Target("v2", "127.0.0.1:5002", "k2"),
               "old": Target("old", "127.0.0.1:5003", None)}
    text = endpoint_config(record, targets, 7, Path("/h/endpoints"))
    assert "listen 127.0.0.1:41000;" in text and 'split_clients "$request_id" $md_shop_pick' in text
    assert '70% "v1";' in text and '* "v2";' in text and "5003" not in text  # a 0 share: no upstream at all
    assert '"v2" "Bearer k2";' in text and '"v1" "Bearer' not in text
    assert 'return 200 "7"' in text  # the generation a reload is waited for
    assert "mirror" not in text and "access_log" not in text  # no shadow: nothing copied, nothing logged
    shadowed = endpoint_config(EndpointRecord("shop", 41000, (Split((("v1", 100),), "ann", "t", ("old", 30)),), "t"),
                               targets, 8, Path("/h/endpoints"))
    assert "mirror /_modeldeck/shadow;" in shadowed and "upstream md_shop__old" in shadowed
    assert 'split_clients "shadow$request_id" $md_shop_copy' in shadowed and '30% "old";' in shadowed
    assert "access_log /h/endpoints/shop.shadow.log md_shop_shadow if=$md_shop_copy;" in shadowed
    assert "access_log /h/endpoints/shop.bodies.log md_shop_body if=$md_shop_copy;" in shadowed
    with pytest.raises(EndpointError, match="cannot go into the proxy's configuration"):
        endpoint_config(record, {**targets, "v2": Target("v2", "127.0.0.1:5002", 'k";evil')}, 8, Path("/h"))


# --- through a real nginx, in front of local deployments -----------------------------------------------------------

@pytest.fixture()
def deck(first_run_deck):
    """first_run_deck with v1 as `one` and v2 as `two` (local); every endpoint deleted afterwards (the proxy stops
    with its last)."""
    deck = first_run_deck
    for version, name in ((1, "one"), (2, "two")):
        deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", version), name, runtime="local",
                                         timeout=180)
    yield deck
    for view in endpoints.list_endpoints(deck):
        endpoints.delete_endpoint(deck, view.record.name)
    assert Proxy(deck.home.path / "endpoints").pid() is None


def test_an_endpoint_answers_as_its_deployment_and_names_it(deck):
    view = endpoints.create_endpoint(deck, "shop", "one")
    assert view.serving and re.fullmatch(r"http://127\.0\.0\.1:\d+/score", view.scoring_uri)
    direct = requests.post(deck.deployments.get("one").scoring_uri, json=BLANK, timeout=30)
    answer = requests.post(view.scoring_uri, json=BLANK, timeout=30)
    assert answer.status_code == 200 and answer.json() == direct.json()
    assert answer.headers["X-ModelDeck-Deployment"] == "one"
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])
    refused = requests.post(view.scoring_uri, data=b"{not json", headers={"Content-Type": "application/json"},
                            timeout=30)
    assert refused.status_code == 400 and "error" in refused.json()  # the deployment's own refusal, passed on
    assert requests.get(view.scoring_uri.replace("/score", "/health"), timeout=30).status_code == 200
    with pytest.raises(EndpointError, match="exists already"):
        endpoints.create_endpoint(deck, "shop", "two")
    with pytest.raises(EndpointError, match="cannot name an endpoint"):
        endpoints.create_endpoint(deck, "Shop!", "two")


def test_the_split_holds_over_2000_requests_and_rollback_returns_to_the_one_before(deck):
    view = endpoints.create_endpoint(deck, "shop", "one")
    endpoints.set_traffic(deck, "shop", {"one": 80, "two": 20})
    with requests.Session() as session:
        said = Counter(session.post(view.scoring_uri, json=BLANK, timeout=30).headers["X-ModelDeck-Deployment"]
                       for _ in range(2000))
    share = said["two"] / 2000
    assert said.keys() == {"one", "two"}
    assert abs(share - 0.2) < 4.5 * (0.2 * 0.8 / 2000) ** 0.5  # 4.5 standard errors: 0.040; fails 1 run in 150,000
    back = endpoints.rollback(deck, "shop")
    assert back.record.split.weights == (("one", 100),) and len(back.record.history) == 3
    assert [s.describe() for s in back.record.history] == ["one=100", "one=80 two=20", "one=100"]
    assert all(s.by and s.at for s in back.record.history)


def test_bad_changes_are_refused_and_change_nothing(deck):
    view = endpoints.create_endpoint(deck, "shop", "one")
    import socket

    with socket.socket() as taken:  # another program's port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EndpointError, match=f"port {port} of 127.0.0.1 is taken by another program"):
            endpoints.create_endpoint(deck, "other", "two", port=port)
    assert [v.record.name for v in endpoints.list_endpoints(deck)] == ["shop"]
    assert requests.post(view.scoring_uri, json=BLANK, timeout=30).status_code == 200  # the running one serves on
    for weights, said in (({"one": 60, "two": 30}, "sum to 90"), ({"one": 50, "nobody": 50}, None),
                          ({"one": 0, "two": 0}, "sum to 0")):
        with pytest.raises((EndpointError, DeploymentNotFoundError), match=said):
            endpoints.set_traffic(deck, "shop", weights)
    assert endpoints.show_endpoint(deck, "shop").record.split.weights == (("one", 100),)
    with pytest.raises(EndpointError, match="nothing to go back to"):
        endpoints.rollback(deck, "shop")
    from backend.training import train_sample

    cancer = train_sample(deck.registry, "breast-cancer")  # 30 named columns, two classes: another kind
    deck.deployments.deploy_and_wait(cancer, "rows", runtime="local", timeout=180)
    with pytest.raises(EndpointError, match=r"'rows' \(sklearn_breast_cancer:1\) does not take the same inputs and "
                                            r"answer the same classes as 'one' \(sklearn_mnist:1\)"):
        endpoints.set_traffic(deck, "shop", {"one": 50, "rows": 50})
    endpoints.set_traffic(deck, "shop", {"one": 70, "two": 30})
    with pytest.raises(EndpointError, match="'one' carries 70% of the traffic of endpoint 'shop'"):
        managing.delete(deck, "one")
    assert deck.deployments.get("one")  # still there
    managing.delete(deck, "one", force=True)  # its share moves to two first
    assert endpoints.show_endpoint(deck, "shop").record.split.weights == (("two", 100),)
    assert requests.post(view.scoring_uri, json=BLANK, timeout=30).headers["X-ModelDeck-Deployment"] == "two"
    with pytest.raises(EndpointError, match="the only deployment behind endpoint 'shop'"):
        managing.delete(deck, "two")


def test_no_request_fails_while_the_split_changes_ten_times_and_a_deployment_is_replaced(deck):
    view = endpoints.create_endpoint(deck, "shop", "one")
    failures: list[str] = []
    answered: Counter[str] = Counter()
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:  # keep-alive connections, as a real client holds them
            deadline = time.monotonic() + 300  # bounded, whatever happens
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    answer = session.post(view.scoring_uri, json=BLANK, timeout=30)
                except requests.RequestException as e:
                    failures.append(f"{type(e).__name__}: {e}")
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")
                answered[answer.headers.get("X-ModelDeck-Deployment", "?")] += 1

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        for k in range(10):
            endpoints.set_traffic(deck, "shop", {"one": 100 - 10 * k, "two": 10 * k})
            time.sleep(0.3)
        # one replaced: a third deployment takes its traffic, then the old one goes
        deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "three", runtime="local",
                                         timeout=180)
        endpoints.set_traffic(deck, "shop", {"one": 0, "two": 50, "three": 50})
        managing.delete(deck, "one")
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    assert failures == []
    assert sum(answered.values()) > 200 and answered.keys() == {"one", "two", "three"}
    assert endpoints.show_endpoint(deck, "shop").record.split.weights == (("two", 50), ("three", 50))


@pytest.mark.parametrize("killed", ["master", "all"])
def test_a_killed_proxy_is_started_again_on_the_same_port(deck, killed):
    view = endpoints.create_endpoint(deck, "shop", "one")
    proxy = Proxy(deck.home.path / "endpoints")
    master = proxy.pid()
    if killed == "all":  # the master and its workers (an OOM kill, a reboot)
        os.killpg(master, signal.SIGKILL)
    else:  # the master alone: its worker goes on serving the old configuration, and holds the port
        os.kill(master, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proxy.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if killed == "all":
        with pytest.raises(requests.ConnectionError):
            requests.post(view.scoring_uri, json=BLANK, timeout=5)
    again = endpoints.list_endpoints(deck)[0]  # a listing starts it again
    assert again.serving and again.scoring_uri == view.scoring_uri and proxy.pid() not in (None, master)
    assert requests.post(view.scoring_uri, json=BLANK, timeout=30).status_code == 200


def test_the_cli_creates_splits_shows_rolls_back_and_deletes(first_run_cli_env):
    env = first_run_cli_env
    cli(env, "deploy", "sklearn_mnist:1", "--name", "cli-one")
    cli(env, "deploy", "sklearn_mnist:2", "--name", "cli-two")
    try:
        made = cli(env, "endpoints", "create", "web", "--deployment", "cli-one")
        uri = made.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/score", uri)
        assert requests.post(uri, json=BLANK, timeout=30).headers["X-ModelDeck-Deployment"] == "cli-one"
        cli(env, "endpoints", "traffic", "web", "cli-one=90", "cli-two=10")
        bad = cli(env, "endpoints", "traffic", "web", "cli-one=90", "cli-two=20", check=False)
        assert bad.returncode == 1 and "sum to 110, not 100" in bad.stderr
        shown = json.loads(cli(env, "endpoints", "show", "web", "--json").stdout)
        assert shown["traffic"] == {"cli-one": 90, "cli-two": 10} and shown["scoring_uri"] == uri
        assert [h["traffic"] for h in shown["history"]] == [{"cli-one": 100}, {"cli-one": 90, "cli-two": 10}]
        assert "cli-one=100" in cli(env, "endpoints", "rollback", "web").stdout
        assert "web" in cli(env, "endpoints", "list").stdout
        cli(env, "endpoints", "delete", "web")
        assert json.loads(cli(env, "endpoints", "list", "--json").stdout) == []
        assert not Proxy(Path(env["MODELDECK_HOME"]) / "endpoints").pid()
    finally:
        cli(env, "endpoints", "delete", "web", check=False)
        cli(env, "deployments", "delete", "cli-one", "--force", check=False)
        cli(env, "deployments", "delete", "cli-two", check=False)


def test_the_deploy_page_makes_an_endpoint_splits_rolls_back_and_deletes_it(first_run_home, tmp_path, monkeypatch):
    from .test_dashboard import backend_deck, button, dashboard_home, on_page

    setup = dashboard_home(first_run_home, tmp_path, monkeypatch)
    home = next(setup)
    deck = backend_deck(home)
    for version, name in ((1, "one"), (2, "two")):
        deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", version), name, runtime="local",
                                         timeout=180)
    try:
        at = on_page("views/deploy.py")
        at.text_input(key="new_endpoint_name").set_value("Shop!")
        button(at, "Create endpoint").click().run()
        assert any("cannot name an endpoint" in e.value for e in at.error) and not at.exception
        at.text_input(key="new_endpoint_name").set_value("shop")
        at.selectbox(key="new_endpoint_first").set_value("one")
        button(at, "Create endpoint").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert [v.record.split.weights for v in endpoints.list_endpoints(deck)] == [(("one", 100),)]
        at.multiselect(key="endpoint/shop/behind").set_value(["one", "two"]).run()
        at.number_input(key="endpoint/shop/one").set_value(70).run()
        assert button(at, "Apply split").disabled  # 70 + 0: not a split
        assert any("sum to 70 %" in c.value for c in at.caption)
        at.number_input(key="endpoint/shop/two").set_value(30).run()
        button(at, "Apply split").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert endpoints.show_endpoint(deck, "shop").record.split.weights == (("one", 70), ("two", 30))
        button(at, "Roll back").click().run()
        assert endpoints.show_endpoint(deck, "shop").record.split.weights == (("one", 100),)
        at.selectbox(key="endpoint/shop/shadow").set_value("two").run()
        button(at, "Apply shadow").click().run()
        assert endpoints.show_endpoint(deck, "shop").record.split.mirror == ("two", 100)
        from backend.data.builtin import load_mnist_test

        uri = endpoints.show_endpoint(deck, "shop").scoring_uri
        for row in load_mnist_test().X[:100].tolist():
            requests.post(uri, json={"data": [row]}, timeout=30)
        deadline = time.monotonic() + 30
        while endpoints.shadow_of(deck, "shop").record.compared < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
        at.run()
        assert [m.value for m in at.metric if m.label == "Compared"] == ["100"]
        assert any("the shadow answered otherwise" in c.value for c in at.caption)  # v1 and v2 differ on some
        button(at, "Delete endpoint…").click().run()
        button(at, "Yes, delete shop").click().run()
        assert endpoints.list_endpoints(deck) == [] and not at.exception
    finally:
        next(setup, None)


def test_a_container_and_a_local_process_sit_behind_one_endpoint(engine, trained_home, tmp_path):
    from backend.config import Settings
    from backend.context import open_modeldeck

    from .conftest import copy_home, remove_home_deployments

    deck = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "home"), runtime="docker"))
    model = deck.registry.get("sklearn_mnist", 1)
    try:
        deck.deployments.deploy_and_wait(model, "boxed", runtime="docker", timeout=300)
        deck.deployments.deploy_and_wait(model, "process", runtime="local", timeout=180)
        view = endpoints.create_endpoint(deck, "mixed", "boxed")
        endpoints.set_traffic(deck, "mixed", {"boxed": 50, "process": 50})
        with requests.Session() as session:
            answers = [session.post(view.scoring_uri, json=BLANK, timeout=30) for _ in range(200)]
        assert {a.status_code for a in answers} == {200} and len({a.text for a in answers}) == 1  # one model's answer
        assert Counter(a.headers["X-ModelDeck-Deployment"] for a in answers).keys() == {"boxed", "process"}
    finally:
        for found in endpoints.list_endpoints(deck):
            endpoints.delete_endpoint(deck, found.record.name)
        if "process" in {d.name for d in deck.deployments.list()}:
            deck.deployments.delete("process")
        remove_home_deployments(engine, deck.home.path)


def test_a_shadow_gets_a_copy_of_each_request_and_agrees_as_scoring_both_does(deck):
    from backend.data.builtin import load_mnist_test

    view = endpoints.create_endpoint(deck, "shop", "one")
    endpoints.set_mirror(deck, "shop", "two", 100)
    rows = load_mnist_test().X[:300].tolist()
    with requests.Session() as session:
        got = [session.post(view.scoring_uri, json={"data": [row]}, timeout=30) for row in rows]
    assert {a.headers["X-ModelDeck-Deployment"] for a in got} == {"one"}  # the client gets the live answers only
    assert "X-ModelDeck-Answer" not in got[0].headers
    said = {name: requests.post(deck.deployments.get(name).scoring_uri, json={"data": rows}, timeout=60).json()
            for name in ("one", "two")}
    assert [a.json() for a in got] == [[label] for label in said["one"]]
    deadline = time.monotonic() + 30  # the copies are answered beside the live requests: wait for the last
    while (shadow := endpoints.shadow_of(deck, "shop")).record.compared < 300 and time.monotonic() < deadline:
        time.sleep(0.2)
    agree = sum(a == b for a, b in zip(said["one"], said["two"], strict=True))
    assert 0 < agree < 300  # v1 and v2 differ on some of these digits
    assert (shadow.deployment, shadow.share, shadow.record.compared, shadow.record.agreeing) == ("two", 100, 300, agree)
    latest = shadow.record.latest[-1]
    assert latest.live_deployment == "one" and latest.live != latest.shadow
    assert len(json.loads(latest.body)["data"][0]) == 784  # the input, to be shown
    logs = deck.home.path / "endpoints"
    assert {oct((logs / f"shop{x}").stat().st_mode & 0o777) for x in (".live.log", ".shadow.log", ".bodies.log")} \
        == {"0o600"}
    shown = json.loads(cli_show(deck))
    assert shown["shadow"]["compared"] == 300 and shown["shadow"]["agreement"] == pytest.approx(agree / 300)
    endpoints.set_mirror(deck, "shop", None)
    requests.post(view.scoring_uri, json={"data": rows[:1]}, timeout=30)
    time.sleep(0.5)
    assert endpoints.shadow_of(deck, "shop").deployment is None
    with pytest.raises(EndpointError, match="not DEPLOYMENT=PERCENT"):
        endpoints.parse_mirror("two=0")
    endpoints.set_mirror(deck, "shop", "two", 50)
    managing.delete(deck, "two")  # a shadow serves no client: deleting it takes it off first
    assert endpoints.show_endpoint(deck, "shop").record.split.mirror is None


def cli_show(deck) -> str:
    env = {**os.environ, "MODELDECK_HOME": str(deck.home.path), "MODELDECK_RUNTIME": "local",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return cli(env, "endpoints", "show", "shop", "--json").stdout
