"""``python -m vpcost_utils.bench``."""

from . import main

raise SystemExit(main())
