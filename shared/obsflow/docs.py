"""Algorithm documentation as static pages: one per recipe version, one per task, each task documented once.

A task is its code at one version: a hosted pipeline's task class at the package version (linked to DKIST's page
of the workflow and to the package version's source), or an obsflow task at obsflow's version (its documentation
and code on the page itself). Every recipe version that runs a task links to the task's one page, and the task's
page lists those recipes.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
from dataclasses import dataclass, field

from obsflow.recipes.model import Recipe, TaskSpec

STYLE = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.4}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
         "pre{background:#f6f6f6;padding:1rem;overflow-x:auto}")


@dataclass
class TaskPage:
    slug: str
    title: str
    code: str  # module:Class
    version: str
    description: str
    links: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""
    recipes: list[Recipe] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def recipe_slug(recipe: Recipe) -> str:
    return _slug(f"{recipe.name}-{recipe.version}")


def _task_key(recipe: Recipe, task: TaskSpec, obsflow_version: str) -> tuple[str, str]:
    if task.pipeline_task:
        return task.pipeline_task, f"{recipe.pipeline.package}=={recipe.pipeline.version}"
    return task.entrypoint, f"obsflow=={obsflow_version}"


def _obsflow_source(entrypoint: str) -> tuple[str, str]:
    """An obsflow task's documentation and code, from the installed task package."""
    module, _, name = entrypoint.partition(":")
    try:
        task_class = getattr(importlib.import_module(module), name)
        return inspect.getdoc(task_class) or "", inspect.getsource(task_class)
    except (ImportError, AttributeError, OSError, TypeError):
        return "", ""


def task_pages(recipes: list[Recipe], obsflow_version: str) -> dict[tuple[str, str], TaskPage]:
    pages: dict[tuple[str, str], TaskPage] = {}
    for recipe in recipes:
        for task in recipe.tasks:
            key = _task_key(recipe, task, obsflow_version)
            if key not in pages:
                code, version = key
                if task.pipeline_task:
                    source = recipe.pipeline
                    links = [(f"DKIST's documentation of {source.package} {source.version}",
                              recipe.documentation_url.rsplit("/", 1)[0] + "/"),
                             (f"the source of {source.package} {source.version} (module "
                              f"{code.partition(':')[0]})", source.source_url)]
                    pages[key] = TaskPage(_slug(f"{version}-{code}"), code.partition(":")[2], code, version,
                                          task.description, links)
                else:
                    doc, text = _obsflow_source(code)
                    pages[key] = TaskPage(_slug(f"{version}-{code}"), code.partition(":")[2], code, version,
                                          doc or task.description, source=text)
            pages[key].recipes.append(recipe)
    return pages


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


def _e(value) -> str:
    return html.escape(str(value))


def recipe_page(recipe: Recipe, pages: dict, obsflow_version: str) -> str:
    rows = []
    for level, tasks in enumerate(recipe.levels(), 1):
        for task in tasks:
            page = pages[_task_key(recipe, task, obsflow_version)]
            rows.append(f"<tr><td>{level}</td><td>{_e(task.name)}</td><td><a href='../tasks/{page.slug}.html'>"
                        f"{_e(page.code)}</a></td><td>{_e(', '.join(task.upstreams) or '-')}</td>"
                        f"<td>{_e(task.resource_class)}</td></tr>")
    parameters = "".join(
        f"<tr><td>{_e(p.name)}</td><td>{_e(p.type)}</td><td>{_e('; '.join(f'{v.value} from {v.effective_from}' for v in p.values))}"
        f"</td><td>{_e(p.description)}</td></tr>" for p in recipe.parameters) or "<tr><td colspan=4>none</td></tr>"
    origin = (f"<p>Workflow <code>{_e(recipe.pipeline.workflow)}</code> of {_e(recipe.pipeline.package)} "
              f"{_e(recipe.pipeline.version)}, run unchanged by obsflow's host (<a href='{_e(recipe.pipeline.source_url)}'>"
              f"source</a>).</p>" if recipe.pipeline else f"<p>An obsflow recipe (obsflow {_e(obsflow_version)}).</p>")
    body = (f"<p><a href='../index.html'>all recipes</a></p><h1>{_e(recipe.key)}</h1><p>{_e(recipe.description)}</p>"
            f"{origin}<p>Instrument {_e(recipe.instrument)}, kind {_e(recipe.kind)}. Documentation: "
            f"<a href='{_e(recipe.documentation_url)}'>{_e(recipe.documentation_url)}</a></p>"
            "<h2>Tasks, in dependency order</h2><table><tr><th>level</th><th>task</th><th>code</th><th>upstreams</th>"
            f"<th>resource class</th></tr>{''.join(rows)}</table>"
            "<h2>Parameters (dated values)</h2><table><tr><th>name</th><th>type</th><th>values</th><th>description</th>"
            f"</tr>{parameters}</table>")
    return _page(recipe.key, body)


def task_page(page: TaskPage) -> str:
    links = "".join(f"<li><a href='{_e(url)}'>{_e(text)}</a></li>" for text, url in page.links)
    used = "".join(f"<li><a href='../recipes/{recipe_slug(r)}.html'>{_e(r.key)}</a></li>"
                   for r in sorted(page.recipes, key=lambda r: r.key))
    source = f"<h2>Code</h2><pre>{_e(page.source)}</pre>" if page.source else ""
    body = (f"<p><a href='../index.html'>all recipes</a></p><h1>{_e(page.title)}</h1><p><code>{_e(page.code)}</code>, "
            f"{_e(page.version)}</p><p>{_e(page.description)}</p><ul>{links}</ul><h2>Used by</h2><ul>{used}</ul>{source}")
    return _page(f"{page.title} ({page.version})", body)


def build(recipes: list[Recipe], obsflow_version: str) -> dict[str, str]:
    """Every page, by its path under the documentation folder."""
    pages = task_pages(recipes, obsflow_version)
    files = {f"recipes/{recipe_slug(r)}.html": recipe_page(r, pages, obsflow_version) for r in recipes}
    files.update({f"tasks/{p.slug}.html": task_page(p) for p in pages.values()})
    items = "".join(f"<li><a href='recipes/{recipe_slug(r)}.html'>{_e(r.key)}</a>: {_e(r.description)}"
                    f"{' (' + _e(r.pipeline.package) + ')' if r.pipeline else ''}</li>"
                    for r in sorted(recipes, key=lambda r: r.key))
    files["index.html"] = _page("obsflow recipes", f"<h1>Recipes</h1><p>{len(recipes)} recipe versions, "
                                                   f"{len(pages)} tasks.</p><ul>{items}</ul>")
    return files
