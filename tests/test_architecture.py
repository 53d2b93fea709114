"""The architecture of shared/DESIGN.md, checked on every import (imports inside functions too).

Layering: imports point one way, `tidemark/` and `dags/` -> `serving/` -> `models/` and `ingest/` -> `lineage/`
-> `lakehouse/`. `lakehouse` imports none of the others, `lineage` only `lakehouse`, `ingest` and
`models` only `lineage` and `lakehouse` (not each other), `serving` those three, `tidemark` and `dags` any of those five;
nothing imports `tidemark` or `dags`, except that a DAG file may import the DAG folder's helper
modules (the ones `dags/.airflowignore` hides from Airflow's DAG processor).

Public surfaces: a package's `__init__.py` names in `__all__` what other packages may use, its
public modules and any names it re-exports. Another package may import only those modules (and
their names that do not start with an underscore) and those names. Inside a package anything goes.

A plain test over the AST rather than import-linter: `dags/` is a folder of top-level modules that
Airflow puts on sys.path, not a package import-linter could take as a layer, and the
public-surface rule needs the AST anyway. No pin to keep, no import of the code under test.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("lakehouse", "lineage", "ingest", "models", "serving", "tidemark")
# What each may import, of Tidemark's own code (its own package aside).
MAY_IMPORT = {
    "lakehouse": set(),
    "lineage": {"lakehouse"},
    "ingest": {"lineage", "lakehouse"},
    "models": {"lineage", "lakehouse"},
    # Serving answers with a registered model and logs to the lakehouse: above models, beside ingest.
    "serving": {"models", "lineage", "lakehouse"},
    "tidemark": {"lakehouse", "lineage", "ingest", "models", "serving"},
    "dags": {"lakehouse", "lineage", "ingest", "models", "serving"},
}


@dataclass(frozen=True)
class Import:
    path: Path  # relative to the checkout
    line: int
    importer: str  # the package the importing file belongs to ("dags" for the DAG folder)
    module: str  # the module imported from (absolute)
    names: tuple[str, ...]  # for `from module import a, b`; empty for `import module`

    def where(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names else f"import {self.module}"
        return f"{self.path}:{self.line}: {what}"


def dag_modules(root: Path) -> dict[str, bool]:
    """The DAG folder's top-level modules -> whether it is a helper (ignored by the DAG processor)."""
    ignore = root / "dags" / ".airflowignore"
    patterns = [line.split("#", 1)[0].strip() for line in ignore.read_text().splitlines()] if ignore.exists() else []
    return {p.stem: any(pat and fnmatch.fnmatch(p.name, pat) for pat in patterns) for p in (root / "dags").glob("*.py")}


def python_files(root: Path) -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            yield package, path
    for path in sorted((root / "dags").glob("*.py")):
        yield "dags", path


def imports(root: Path) -> Iterator[Import]:
    for package, path in python_files(root):
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = path.relative_to(root)
        here = rel.with_suffix("").parts
        if here[-1] == "__init__":
            here = here[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(rel, node.lineno, package, alias.name, ())
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolved against the importing module's package
                    base = here[: len(here) - node.level + (1 if path.name == "__init__.py" else 0)]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                yield Import(rel, node.lineno, package, module, tuple(a.name for a in node.names))
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield Import(rel, node.lineno, package, node.args[0].value, ())


def public_names(root: Path, package: str) -> set[str] | None:
    """The package's `__all__`, read from its `__init__.py` without importing it (None: it has none)."""
    tree = ast.parse((root / package / "__init__.py").read_text())
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "__all__" and node.value is not None:
            return set(ast.literal_eval(node.value))
    return None


def owner(module: str, dag_folder: dict[str, bool]) -> str | None:
    """Which of Tidemark's packages a module belongs to (None: a third-party or standard module)."""
    top = module.split(".")[0]
    if top in PACKAGES:
        return top
    return "dags" if top in dag_folder else None


def layering_violations(root: Path) -> list[str]:
    out = []
    dag_folder = dag_modules(root)
    for imp in imports(root):
        target = owner(imp.module, dag_folder)
        if target is None or target == imp.importer and target != "dags":
            continue
        if target == "dags" and imp.importer == "dags" and dag_folder[imp.module.split(".")[0]]:
            continue  # a DAG file and its helper module
        if target not in MAY_IMPORT[imp.importer]:
            allowed = ", ".join(sorted(MAY_IMPORT[imp.importer])) or "none of Tidemark's other packages"
            out.append(f"{imp.where()}: {imp.importer} may not import {target} (it may import {allowed}; see shared/DESIGN.md)")
    return out


def surface_violations(root: Path) -> list[str]:
    out = []
    surfaces = {p: public_names(root, p) for p in PACKAGES}
    dag_folder = dag_modules(root)
    for imp in imports(root):
        target = owner(imp.module, dag_folder)
        if target is None or target == imp.importer or target == "dags":
            continue
        public = surfaces[target] or set()
        parts = imp.module.split(".")
        private = [p for p in parts[1:] if p.startswith("_")] + [n for n in imp.names if n.startswith("_")]
        if private:
            out.append(f"{imp.where()}: {', '.join(private)} is private to {target}; use its public API instead")
        elif len(parts) > 1 and parts[1] not in public:
            out.append(f"{imp.where()}: module {target}.{parts[1]} is not in {target}.__all__ (add it there if other packages may use it)")
        elif len(parts) == 1 and (missing := [n for n in imp.names if n not in public]):
            out.append(f"{imp.where()}: {', '.join(missing)} not in {target}.__all__ (add it there if other packages may use it)")
    return out


def surface_problems(root: Path, package: str) -> list[str]:
    """What is wrong with a package's `__all__`: missing, or naming what the package does not have."""
    public = public_names(root, package)
    if public is None:
        return [f"{package}/__init__.py has no __all__: name what other packages may use"]
    init = ast.parse((root / package / "__init__.py").read_text())
    defined = {a.asname or a.name for n in ast.walk(init) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    defined |= {t.id for n in init.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    modules = {p.stem for p in (root / package).glob("*.py")} | {p.parent.name for p in (root / package).glob("*/__init__.py")}
    unknown = sorted(public - defined - modules)
    return [f"{package}.__all__ names {', '.join(unknown)}, which {package} neither defines nor holds as a module"] if unknown else []


def test_imports_follow_the_layering_of_the_design() -> None:
    assert layering_violations(ROOT) == []


def test_packages_use_only_each_others_public_surface() -> None:
    assert [p for package in PACKAGES for p in surface_problems(ROOT, package)] == []
    assert surface_violations(ROOT) == []


def test_the_checks_name_each_forbidden_import_by_file_and_line(tmp_path: Path) -> None:
    """The same checks on a small tree made to break every rule once."""
    files = {
        "lakehouse/__init__.py": '__all__ = ["tables", "gone"]\n',
        "lakehouse/tables.py": "import os\n\n\ndef f():\n    from ingest.land import land  # inside a function\n",
        "lakehouse/catalog.py": "from lakehouse import catalog  # its own package: fine\n",
        "lineage/__init__.py": "__all__ = []\n",
        "lineage/x.py": "import lakehouse.tables\nfrom lakehouse.catalog import load\n",
        "ingest/__init__.py": "__all__ = []\n",
        "ingest/x.py": "from models import registry\n",
        "models/__init__.py": '"""no __all__"""\n',
        "models/x.py": "from lineage import x\n",
        "serving/__init__.py": "__all__ = []\n",
        "tidemark/__init__.py": "__all__ = []\n",
        "tidemark/cli.py": "from lakehouse.tables import _private\nfrom lakehouse._hidden import y\nimport tidemark.cli\n",
        "dags/.airflowignore": "# helpers\nhelper.py\n",
        "dags/helper.py": "import lakehouse.tables\n",
        "dags/a_dag.py": "import helper\nimport b_dag\nfrom tidemark import cli\n",
        "dags/b_dag.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert layering_violations(tmp_path) == [
        "lakehouse/tables.py:5: from ingest.land import land: lakehouse may not import ingest (it may import none of Tidemark's other packages; see shared/DESIGN.md)",
        "ingest/x.py:1: from models import registry: ingest may not import models (it may import lakehouse, lineage; see shared/DESIGN.md)",
        "dags/a_dag.py:2: import b_dag: dags may not import dags (it may import ingest, lakehouse, lineage, models, serving; see shared/DESIGN.md)",
        "dags/a_dag.py:3: from tidemark import cli: dags may not import tidemark (it may import ingest, lakehouse, lineage, models, serving; see shared/DESIGN.md)",
    ]
    assert surface_problems(tmp_path, "lakehouse") == ["lakehouse.__all__ names gone, which lakehouse neither defines nor holds as a module"]
    assert surface_problems(tmp_path, "models") == ["models/__init__.py has no __all__: name what other packages may use"]
    assert surface_violations(tmp_path) == [
        "lakehouse/tables.py:5: from ingest.land import land: module ingest.land is not in ingest.__all__ (add it there if other packages may use it)",
        "lineage/x.py:2: from lakehouse.catalog import load: module lakehouse.catalog is not in lakehouse.__all__ (add it there if other packages may use it)",
        "ingest/x.py:1: from models import registry: registry not in models.__all__ (add it there if other packages may use it)",
        "models/x.py:1: from lineage import x: x not in lineage.__all__ (add it there if other packages may use it)",
        "tidemark/cli.py:1: from lakehouse.tables import _private: _private is private to lakehouse; use its public API instead",
        "tidemark/cli.py:2: from lakehouse._hidden import y: _hidden is private to lakehouse; use its public API instead",
        "dags/a_dag.py:3: from tidemark import cli: cli not in tidemark.__all__ (add it there if other packages may use it)",
    ]
