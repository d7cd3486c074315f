// numbre's contest: a person and the model read the same hard test digits; the page keeps the score.
//
// GET /api/contest gives a game's digits without their answers; POST /api/contest/answer reveals
// the truth and the model's answer for one digit once the person has typed theirs. The score lives
// here, in the page, so a reload starts a new game. #contest-view's data-state says where the game
// is: idle, loading, asking (waiting for the person), checking, answered, over or error.
//
// The views (drawing pad, contest) are switched by the address's #hash, so /#contest can be shared.
"use strict";

(() => {
  const GAME = 10;   // digits in one game
  const $ = (id) => document.getElementById(id);
  const view = $("contest-view"), input = $("contest-guess"), next = $("contest-next");
  let game = null;   // {digits: [{id, image}], index, person, model}; replaced by every restart

  // --- views -----------------------------------------------------------------------------------

  function showView() {
    const contest = location.hash === "#contest";
    $("draw-view").hidden = contest;
    $("lead-draw").hidden = contest;
    view.hidden = !contest;
    for (const [link, on] of [[$("view-draw"), !contest], [$("view-contest"), contest]]) {
      if (on) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    if (contest && !game) start();
    else if (contest && view.dataset.state === "asking") input.focus();
  }

  // --- the game --------------------------------------------------------------------------------

  function setState(state) { view.dataset.state = state; }

  function setVerdict(truth = "", person = "", model = "", summary = "") {
    $("contest-truth").textContent = truth;
    $("contest-person").textContent = person;
    $("contest-model").textContent = model;
    $("contest-summary").textContent = summary;
  }

  function showScore() {
    $("score-person").textContent = String(game.person);
    $("score-model").textContent = String(game.model);
  }

  async function start() {
    const mine = game = { digits: [], index: 0, person: 0, model: 0 };
    showScore();
    setVerdict();
    $("contest-hint").textContent = "";
    $("contest-image").removeAttribute("src");
    $("contest-progress").textContent = "";
    input.value = "";
    input.disabled = $("contest-submit").disabled = next.disabled = true;
    next.textContent = "Next digit";
    setState("loading");
    let answer;
    try {
      const response = await fetch(`/api/contest?count=${GAME}`);
      answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
      if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
    } catch (error) {
      if (mine !== game) return;
      setVerdict(`No contest today: ${error.message}`);
      setState("error");
      return;
    }
    if (mine !== game) return;   // restarted while this game was loading
    mine.digits = answer.digits;
    showDigit();
  }

  function showDigit() {
    const digit = game.digits[game.index];
    $("contest-image").src = `data:image/png;base64,${digit.image}`;
    $("contest-progress").textContent = `Digit ${game.index + 1} of ${game.digits.length}`;
    setVerdict();
    $("contest-hint").textContent = "";
    delete view.dataset.person;
    delete view.dataset.model;
    input.value = "";
    input.disabled = $("contest-submit").disabled = false;
    next.disabled = true;
    setState("asking");
    input.focus();
  }

  async function answer(event) {
    event.preventDefault();
    if (view.dataset.state !== "asking") return;
    const guess = input.value.trim();
    if (!/^[0-9]$/.test(guess)) {
      $("contest-hint").textContent = "Type one digit, 0 to 9.";
      input.focus();
      return;
    }
    $("contest-hint").textContent = "";
    const mine = game, digit = game.digits[game.index];
    input.disabled = $("contest-submit").disabled = true;
    setState("checking");
    let result;
    try {
      const response = await fetch("/api/contest/answer", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: digit.id, guess: Number(guess) }),
      });
      result = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
      if (!response.ok) throw new Error(result.error || `the server answered ${response.status}`);
    } catch (error) {
      if (mine !== game) return;
      $("contest-hint").textContent = `No answer from the server (${error.message}); try again.`;
      input.disabled = $("contest-submit").disabled = false;
      setState("asking");
      return;
    }
    if (mine !== game) return;
    reveal(result);
  }

  function reveal(result) {
    game.person += result.person_right ? 1 : 0;
    game.model += result.model_right ? 1 : 0;
    showScore();
    const mark = (right) => (right ? "right" : "wrong");
    view.dataset.person = mark(result.person_right);
    view.dataset.model = mark(result.model_right);
    const sure = `${Math.round(result.model.confidence * 100)}% sure`;
    const article = String(result.truth) === "8" ? "an" : "a";   // "a 7" but "an 8"
    setVerdict(`It is ${article} ${result.truth}.`, `You said ${result.guess}: ${mark(result.person_right)}.`,
               `The model said ${result.model.digit}, ${sure}: ${mark(result.model_right)}.`);
    const last = game.index + 1 >= game.digits.length;
    next.disabled = false;
    if (last) {
      next.textContent = "Play again";
      $("contest-progress").textContent = `Final score after ${game.digits.length} digits`;
      $("contest-summary").textContent = game.person > game.model ? `You win, ${game.person} to ${game.model}.`
        : game.person < game.model ? `The model wins, ${game.model} to ${game.person}.`
        : `A draw, ${game.person} each.`;
    }
    setState(last ? "over" : "answered");
    next.focus();
  }

  function onNext() {
    if (view.dataset.state === "over") { start(); return; }
    if (view.dataset.state !== "answered") return;
    game.index += 1;
    showDigit();
  }

  // --- wiring ----------------------------------------------------------------------------------

  $("contest-form").addEventListener("submit", answer);
  next.addEventListener("click", onNext);
  $("contest-restart").addEventListener("click", start);
  window.addEventListener("hashchange", showView);
  showView();
})();
