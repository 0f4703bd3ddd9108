"""pytest-django with sqlite: a test database per worker, isolation per test, the DB blocker,
the ``settings`` fixture, and no database file left behind."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_django")
pytest.importorskip("django")

PLUGINS = ("pytest-django",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
        pythonpath = .
    """,
    "proj/__init__.py": "",
    "proj/settings_memory.py": """
        SECRET_KEY = "x"
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "dev.sqlite3"}}
        # test DB: sqlite in memory (Django's default for sqlite)
        USE_TZ = True
        SHOP_NAME = "Acme"
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
    """,
    "proj/settings_file.py": """
        from proj.settings_memory import *  # noqa

        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "dev.sqlite3",
                "TEST": {"NAME": "test_shop.sqlite3"},  # test DB in a file
            }
        }
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models


        class Product(models.Model):
            name = models.CharField(max_length=50, unique=True)
            price = models.IntegerField()


        class Order(models.Model):
            product = models.ForeignKey(Product, on_delete=models.CASCADE)
            qty = models.IntegerField()
    """,
    # Records which process used which test database, for every DB test.
    "tests/conftest.py": """
        import os
        import pytest

        LOG = os.path.join(os.path.dirname(os.path.dirname(__file__)), "dbnames.log")


        @pytest.fixture(autouse=True)
        def _record_test_db(request):
            yield
            uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(
                request.fixturenames)
            if uses_db:
                from django.db import connection
                with open(LOG, "a") as f:
                    f.write(f"{os.getpid()} {connection.settings_dict['NAME']}\\n")
    """,
    "tests/test_orders.py": """
        import time
        import pytest
        from shop.models import Order, Product


        @pytest.fixture
        def product(db):
            return Product.objects.create(name="widget", price=3)


        @pytest.mark.parametrize("qty", [1, 2, 3])
        def test_order_total(product, qty):
            Order.objects.create(product=product, qty=qty)
            time.sleep(0.05)
            assert Order.objects.count() == 1
            assert sum(o.qty * o.product.price for o in Order.objects.all()) == 3 * qty


        def test_transactional(transactional_db):
            Product.objects.create(name="t", price=1)
            time.sleep(0.05)
            assert Product.objects.filter(name="t").count() == 1
    """,
    "tests/test_products.py": """
        import time
        import pytest
        from shop.models import Product


        @pytest.mark.django_db
        @pytest.mark.parametrize("n", range(3))
        def test_create_product(n):
            Product.objects.create(name=f"p{n}", price=10)
            time.sleep(0.05)  # a slow call while the transaction is open
            assert Product.objects.count() == 1  # each test sees only its own rows


        @pytest.mark.django_db
        def test_unique_name():
            from django.db import IntegrityError, transaction
            Product.objects.create(name="dup", price=1)
            with pytest.raises(IntegrityError), transaction.atomic():
                Product.objects.create(name="dup", price=2)
    """,
    "tests/test_settings_and_blocking.py": """
        import time
        import pytest
        from shop.models import Product


        def test_no_db_access_without_mark():
            with pytest.raises(RuntimeError, match="Database access not allowed"):
                Product.objects.count()


        def test_settings_override(settings):
            settings.SHOP_NAME = "Override"
            time.sleep(0.1)
            from django.conf import settings as dj
            assert dj.SHOP_NAME == "Override"


        def test_settings_default():
            time.sleep(0.05)
            from django.conf import settings as dj
            assert dj.SHOP_NAME == "Acme"


        def test_db_name(db):
            from django.db import connection
            print("TEST DB:", connection.settings_dict["NAME"])
    """,
}

# Tests that use the database (the recorder writes one line for each).
DB_TESTS = 9


def db_users(run) -> dict[str, set[str]]:
    """Test database name -> the processes that used it."""
    log = run.file("dbnames.log")
    users: dict[str, set[str]] = {}
    for line in (log.read_text().splitlines() if log.exists() else []):
        pid, name = line.split(" ", 1)
        users.setdefault(name, set()).add(pid)
    return users


@over_modes
@pytest.mark.parametrize("db", ["memory", "file"])
def test_django(compat, mode: str, db: str) -> None:
    got, serial = compat.against_serial(FILES, mode, f"--ds=proj.settings_{db}", "-ra", key=db)
    assert_counts(got, "12 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    leftovers = sorted(p.relative_to(got.path).as_posix() for p in got.path.rglob("*.sqlite3*"))
    assert not leftovers, f"[{mode}] database files left behind: {leftovers}\n{got.tail()}"
    assert "Error when trying to teardown test databases" not in got.output, (
        f"[{mode}] a test database was not torn down\n{got.tail()}")
    users = db_users(got)
    assert sum(1 for _ in got.file("dbnames.log").read_text().splitlines()) == DB_TESTS
    if db == "file":
        # One test database per worker process, as under pytest-xdist (serial: one).
        shared = {name: pids for name, pids in users.items() if len(pids) > 1}
        assert not shared, f"[{mode}] worker processes shared a test database file: {shared}"
        assert all("test_shop" in name for name in users), users
    if got is serial:
        assert len(users) == 1, users
