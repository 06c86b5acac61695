"""The `resdb` command line: serve, init, import, export, search, areas, match, reindex and admin tasks.

The group is here; its commands live by audience: `serving` (host and index), `data` (import, export,
districts, templates), `query` (search, areas, match, gaps) and `people` (accounts, tokens, sheets).
"""

from __future__ import annotations

import click

from resdb.cli import data, people, query, serving


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """地域の社会資源ディレクトリ（resdb）。設定は環境変数 RESDB_DATABASE_URL, RESDB_INSTANCE など。"""


for command in (
    serving.init,
    serving.serve,
    data.import_,
    data.export,
    query.search,
    query.areas,
    serving.reindex,
    serving.check,
    serving.index_group,
    data.districts,
    data.template,
    data.synth,
    query.match,
    query.gaps,
    people.user,
    people.token,
    people.sheets,
):
    main.add_command(command)
