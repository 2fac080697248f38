"""What the notebooks call: grid and store helpers (``notebook``), the paper's tables (``tables``), the files a
profile must produce (``artifacts``), interactive panels (``explore``), the Colab set-up (``colab``), and the
headless run of every notebook (``reproduce``: ``python -m vpcost_utils.nb.reproduce``, ``make reproduce``)."""
