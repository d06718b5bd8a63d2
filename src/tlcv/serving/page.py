"""The served page: one self-contained HTML document (no CDN, no external file), so it works
offline and behind any firewall."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tlcv</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
  h1 { font-size: 1.3rem; } .muted { color: #666; font-size: .9rem; }
  #drop { border: 2px dashed #888; border-radius: .6rem; padding: 2rem; text-align: center;
          cursor: pointer; } #drop.over { background: #eef; }
  .row { display: flex; gap: 2rem; flex-wrap: wrap; margin-top: 1.5rem; }
  .bars { flex: 1; min-width: 16rem; } .bar { margin: .3rem 0; }
  .fill { background: #3a7bd5; height: .9rem; border-radius: .2rem; }
  img { max-width: 100%; border-radius: .4rem; } #error { color: #b00; }
</style>
</head>
<body>
<h1>tlcv <span id="run" class="muted"></span></h1>
<p class="muted" id="about">loading...</p>
<div id="drop">Drop an image here, or choose one:
  <input id="file" type="file" accept="image/*"></div>
<p id="error"></p>
<div class="row">
  <div class="bars"><h2 id="answer-title" hidden>Prediction</h2><div id="bars"></div></div>
  <div style="flex:1; min-width:16rem"><img id="overlay" alt="" hidden></div>
</div>
<script>
const $ = (id) => document.getElementById(id);
let labels = { answer: "Prediction", count: false, picture: "" };
fetch("metadata").then((r) => r.json()).then((m) => {
  labels = m.page;
  $("run").textContent = m.run;
  $("about").textContent = `${m.task}: ${m.classes.length} classes, ${m.backbone}, ` +
    `engine ${m.engine}, tlcv ${m.tlcv_version}`;
});
async function send(file) {
  $("error").textContent = ""; $("bars").innerHTML = ""; $("overlay").hidden = true;
  const form = () => { const f = new FormData(); f.append("file", file); return f; };
  const answer = await fetch("predict?top_k=5", { method: "POST", body: form() });
  const body = await answer.json();
  if (!answer.ok) { $("error").textContent = body.detail; return; }
  $("answer-title").hidden = false;
  $("answer-title").textContent = labels.answer + (labels.count ? `: ${body.top.length}` : "");
  for (const t of body.top) {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span class="label"></span> <span class="score"></span>` +
      `<div class="fill" style="width:${(100 * t.score).toFixed(1)}%"></div>`;
    row.querySelector(".label").textContent = t.label;
    row.querySelector(".score").textContent = (100 * t.score).toFixed(1) + "%";
    $("bars").appendChild(row);
  }
  const picture = await fetch("explain", { method: "POST", body: form() });
  if (picture.ok) {
    $("overlay").src = URL.createObjectURL(await picture.blob());
    $("overlay").alt = labels.picture;
    $("overlay").hidden = false;
  }
}
$("file").onchange = (e) => e.target.files[0] && send(e.target.files[0]);
$("drop").ondragover = (e) => { e.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (e) => {
  e.preventDefault(); $("drop").classList.remove("over");
  if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]);
};
</script>
</body>
</html>
"""
