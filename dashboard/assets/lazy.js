// Sections marked data-lazy (see ui.section) tell the page, once they come near the viewport,
// by adding their name to the store named in data-lazy-store: the charts below the fold wait
// for it, so a page's first screen is read and drawn first and the rest only when scrolled to.
(function () {
  "use strict";
  const MARGIN_PX = 100;  // start a little before a section scrolls into view
  const observed = new WeakSet();
  let scanning = false;

  function report() {
    const byStore = {};
    document.querySelectorAll("[data-lazy][data-lazy-seen]").forEach(function (el) {
      const store = el.dataset.lazyStore;
      (byStore[store] = byStore[store] || []).push(el.dataset.lazy);
    });
    Object.keys(byStore).forEach(function (store) {
      if (window.dash_clientside && window.dash_clientside.set_props) {
        window.dash_clientside.set_props(store, {data: byStore[store].sort()});
      }
    });
  }

  // A section counts as seen once it comes within MARGIN of the viewport's bottom, and so does
  // every section above it: a jump (an anchor link, the End key) skips over sections that the
  // observer never sees intersect.
  function sweep() {
    let changed = false;
    const limit = window.innerHeight + MARGIN_PX;
    document.querySelectorAll("[data-lazy]:not([data-lazy-seen])").forEach(function (el) {
      if (el.getBoundingClientRect().top < limit) {
        el.dataset.lazySeen = "1";
        observer.unobserve(el);
        changed = true;
      }
    });
    if (changed) report();
  }

  const observer = new IntersectionObserver(function (entries) {
    if (entries.some(function (entry) { return entry.isIntersecting; })) sweep();
  }, {rootMargin: "0px 0px " + MARGIN_PX + "px 0px"});

  let sweeping = false;
  window.addEventListener("scroll", function () {
    if (!sweeping) {
      sweeping = true;
      window.requestAnimationFrame(function () { sweeping = false; sweep(); });
    }
  }, {passive: true});

  function scan() {
    scanning = false;
    // Until Plotly has drawn the page's first charts (placeholders included), cards have no
    // height yet and every section would seem to be in view.
    if (!document.querySelector(".js-plotly-plot")) return;
    document.querySelectorAll("[data-lazy]").forEach(function (el) {
      if (!observed.has(el)) {
        observed.add(el);
        observer.observe(el);
      }
    });
  }

  // Dash renders pages after this script runs: look for new sections once per frame of changes.
  new MutationObserver(function () {
    if (!scanning) {
      scanning = true;
      window.requestAnimationFrame(scan);
    }
  }).observe(document.documentElement, {childList: true, subtree: true});
  scan();
})();
