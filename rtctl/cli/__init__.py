"""The ``rtctl`` command line: thin commands over a small view of the hub.

::

    main.py         builds the typer app from the group modules below; ``main()``
    common.py       shared options (declared once), ``Invocation``, the ``command`` decorator
    errors.py       the one table: error class -> exit code; one-line error reports
    remote.py       ``Remote``: what commands need from the hub; ``AdminApiRemote`` (HTTP)
    views.py        JSON fields, ids and table columns of each kind of record
    output.py       json / name / table / tab-separated rendering, messages, confirmation
    inputs.py       ids, JSON data and tokens from arguments or stdin (``-``)
    serve.py status.py nodes.py sessions.py users.py rooms.py usage.py events.py
    token.py config.py
                    one module per command group: parse options, fetch, render
    completion.py   shell completion at TAB time
    _gen.py         regenerates completions/ and docs/cli.md from the command tree

A command parses its options, calls a plain function or a ``Remote`` method that
fetches or acts, then a renderer from ``output``; the three never mix. Nothing heavy
(rich, jwt, http.client, the server) is imported until a command needs it, so
``rtctl --help`` and TAB completion start fast; running a command imports and builds
only its own group's module. The CLI imports the server only inside ``rtctl serve``.
"""
