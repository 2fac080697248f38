"""``python -m vpcost_utils.report``."""

from . import main

raise SystemExit(main())
