"""Routing through a gateway to instances over a real nats-server."""

from __future__ import annotations

import asyncio

from gateway_harness import Cluster, eventually, routes_known

from pointsman.service import Context, Router, ServiceError


def who_router() -> Router:
    router = Router()

    @router.public_bind("/who")
    async def who(ctx: Context) -> dict[str, object]:
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        return {"instance": ctx.service.instance, "count": ctx.state["count"]}

    @router.public_bind("/users/:id")
    async def user(ctx: Context) -> str:
        return f"param:{ctx.params['id']}"

    @router.public_bind("/users/me")
    async def me(ctx: Context) -> str:
        return "static"

    @router.public_bind("/users/*/posts")
    async def posts(ctx: Context) -> str:
        return "star"

    @router.public_bind("/files/**")
    async def files(ctx: Context) -> str:
        return f"rest:{ctx.params['**']}"

    @router.bind("/secret")
    async def secret(ctx: Context) -> str:
        return f"secret for {ctx.data}"

    return router


async def test_new_sockets_go_to_the_least_connected_instance(cluster: Cluster) -> None:
    a = await cluster.service("who", who_router())
    b = await cluster.service("who", who_router())
    gw = await cluster.gateway()
    await routes_known(gw, 2)
    clients = [await cluster.client(gw) for _ in range(4)]
    seen = []
    for client in clients:
        out = await client.ask("/who")
        seen.append(client.value(out)["instance"])
    assert sorted(seen) == sorted([a.instance, a.instance, b.instance, b.instance])
    assert seen[0] != seen[1] and seen[2] != seen[3]
    # One socket leaves instance X: the next new socket goes to X.
    await clients[0].close()
    await eventually(lambda: gw.gateway.pins.connections(seen[0]) == 1)
    fresh = await cluster.client(gw)
    assert fresh.value(await fresh.ask("/who"))["instance"] == seen[0]


async def test_socket_state_survives_across_messages(cluster: Cluster) -> None:
    await cluster.service("who", who_router())
    await cluster.service("who", who_router())
    gw = await cluster.gateway()
    await routes_known(gw, 2)
    client = await cluster.client(gw)
    answers = [client.value(await client.ask("/who")) for _ in range(5)]
    assert {a["instance"] for a in answers} == {answers[0]["instance"]}
    assert [a["count"] for a in answers] == [1, 2, 3, 4, 5]


async def test_specific_patterns_win(cluster: Cluster) -> None:
    await cluster.service("who", who_router())
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    expected = {"/users/me": "static", "/users/42": "param:42", "/users/42/posts": "star",
                "/files/a/b/c": "rest:a/b/c", "/files": "rest:"}
    for path, answer in expected.items():
        assert client.value(await client.ask(path)) == answer, path


async def test_unknown_path_is_an_error_envelope(cluster: Cluster) -> None:
    await cluster.service("who", who_router())
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    out = await client.ask("/nowhere/at/all")
    assert out.error is not None and out.error[0] == "not_found"
    # The socket is still usable.
    assert client.value(await client.ask("/who"))["count"] == 1


async def test_private_route_only_in_process_and_between_services(cluster: Cluster) -> None:
    svc = await cluster.service("who", who_router())
    other = await cluster.service("caller", Router())
    gw = await cluster.gateway()
    await routes_known(gw, 2)
    client = await cluster.client(gw)
    out = await client.ask("/secret", "x")
    assert out.error is not None and out.error[0] == "not_found"
    assert await svc.call("/secret", "me") == "secret for me"
    assert await other.call("/secret", "you", service="who") == "secret for you"
    try:
        await other.call("/nothing", service="who")
    except ServiceError as exc:
        assert exc.code == "not_found"
    else:
        raise AssertionError("expected not_found")


async def test_gateway_names_are_respected(cluster: Cluster) -> None:
    public_router, internal_router, shared_router = Router(), Router(), Router()
    public_router.public_bind("/public", lambda ctx: "public")
    internal_router.public_bind("/internal", lambda ctx: "internal")
    shared_router.public_bind("/shared", lambda ctx: "shared")
    await cluster.service("pub", public_router, gateway_names=["public"])
    await cluster.service("int", internal_router, gateway_names=["internal"])
    await cluster.service("shared", shared_router)
    public = await cluster.gateway("public")
    internal = await cluster.gateway("internal")
    await routes_known(public, 2)
    await routes_known(internal, 2)
    for gw, ok, refused in ((public, "/public", "/internal"), (internal, "/internal", "/public")):
        client = await cluster.client(gw)
        assert client.value(await client.ask(ok)) == ok.strip("/")
        assert client.value(await client.ask("/shared")) == "shared"
        out = await client.ask(refused)
        assert out.error is not None and out.error[0] == "not_found"


async def test_service_asks_the_client(cluster: Cluster) -> None:
    router = Router()

    @router.public_bind("/quiz")
    async def quiz(ctx: Context) -> dict[str, object]:
        answer = await ctx.request({"question": "6*7?"}, timeout=5)
        return {"you said": answer}

    await cluster.service("quiz", router)
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    ident = await client.send("/quiz")
    question = await client.recv()
    assert question.path == "/quiz" and question.id != ident
    assert client.value(question) == {"question": "6*7?"}
    await client.send(None, 42, id=question.id)  # the answer needs only the id
    out = await client.recv()
    assert out.id == ident and client.value(out) == {"you said": 42}


async def test_open_and_close_hooks_follow_the_socket(cluster: Cluster) -> None:
    router = Router()
    opened: list[str] = []
    closed = asyncio.Event()

    @router.use_open
    async def on_open(ctx: Context) -> None:
        assert ctx.socket_id is not None
        opened.append(ctx.socket_id)
        ctx.state["greeting"] = "hello"

    @router.use_close
    async def on_close(ctx: Context) -> None:
        assert ctx.state["greeting"] == "hello"
        closed.set()

    @router.public_bind("/greet")
    async def greet(ctx: Context) -> str:
        return str(ctx.state["greeting"])

    svc = await cluster.service("greeter", router)
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    assert client.value(await client.ask("/greet")) == "hello"
    assert len(opened) == 1 and svc.connections == 1
    await client.close()
    await asyncio.wait_for(closed.wait(), 5)
    assert svc.connections == 0


async def test_middleware_and_push(cluster: Cluster) -> None:
    router = Router()

    @router.use
    async def auth(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        if ctx.path != "/login" and "user" not in ctx.state:
            ctx.fail("unauthorized", "log in first")
            return
        await call_next()

    @router.public_bind("/login")
    async def login(ctx: Context) -> str:
        ctx.state["user"] = ctx.data
        ctx.send({"event": "welcome"}, path="/events")
        return "ok"

    @router.public_bind("/me")
    async def me(ctx: Context) -> object:
        return ctx.state["user"]

    await cluster.service("auth", router)
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    out = await client.ask("/me")
    assert out.error == ("unauthorized", "log in first")
    await client.send("/login", "ada")
    push = await client.recv()
    assert push.path == "/events" and push.id is None
    assert client.value(await client.recv()) == "ok"
    assert client.value(await client.ask("/me")) == "ada"
