"""Every PNG massmap writes (matplotlib, Agg backend): maps on their WCS (``maps``), HEALPix views
(``healpix``), training previews and loss curves (``training``), and the summary figures (``summary``)."""
