"""Reading an archive of images on a Ray cluster (`numbre batch`): millions of files, many machines.

`numbre.batch.inputs` turns folders, globs and list files into the paths to read;
`numbre.batch.records` makes each image's record (the same as `numbre predict --json` /
`numbre read --json`, or the file and its error) and the Arrow schema that holds it;
`numbre.batch.store` is the output folder: part files written atomically, read back to know
which images are done, so a run that stops is resumed by running it again;
`numbre.batch.run` is the Ray Data pipeline (files read as bytes, recognised by actors that
each load the model once, results streamed back into the store).

Ray is an optional extra (`pip install 'numbre[cluster]'`) and is imported only by `run`, when
a batch starts. A front end: it may import reading, model, data and the core, never training or
torch; the recognising itself is `numbre.reading.recognize`, called here, not repeated.
"""
