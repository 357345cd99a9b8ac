"""``massmap config``: print the resolved configuration (or the list of valid keys)."""
from __future__ import annotations

import click
import yaml

from massmap.cli.common import config_options, main, resolve_config, user_errors
from massmap.config import ConfigError, Config, to_dict, valid_keys


@main.command("config")
@click.option("--keys", is_flag=True, help="List every valid dotted key instead.")
@click.option("--get", "get_key", metavar="KEY", help="Print one key's value (empty for null), e.g. --get grid.npix.")
@click.option("--section", "sections", multiple=True, metavar="NAME",
              help="Print only these top-level sections or keys (repeatable), e.g. --section simulate.")
@config_options
@user_errors
def config_command(keys, get_key, sections, config_files, overrides):
    """Print the resolved config (defaults ← files ← --set) as YAML."""
    if keys:
        click.echo("\n".join(valid_keys(Config)))
        return
    tree = to_dict(resolve_config(config_files, overrides))
    if get_key:
        node = tree
        for i, part in enumerate(get_key.split(".")):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"unknown config key '{get_key}'; run 'massmap config --keys' for the list")
            node = node[part]
        if isinstance(node, dict):
            raise ConfigError(f"config key '{get_key}' is a section; use --section")
        click.echo("" if node is None else (" ".join(map(str, node)) if isinstance(node, list) else node))
        return
    if sections:
        bad = [s for s in sections if s not in tree]
        if bad:
            raise ConfigError(f"unknown config section '{bad[0]}'; valid: {', '.join(tree)}")
        tree = {s: tree[s] for s in sections}
    click.echo(yaml.safe_dump(tree, sort_keys=False, default_flow_style=None).rstrip())
