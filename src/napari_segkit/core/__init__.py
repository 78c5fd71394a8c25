"""Pure array core: numpy, scipy, scikit-image, dask, zarr, tifffile. Never torch or napari."""
