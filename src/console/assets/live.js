// Keeps the newest page of the export list current: polls the ledger's change mark and, when it
// moves, swaps in freshly rendered rows (server-escaped HTML from the same template as the page).
(() => {
  const live = document.getElementById('live');
  const rows = document.getElementById('export-rows');
  if (!live || !rows) return;
  const text = live.querySelector('.live-text');
  let mark = Number(live.dataset.mark);
  let busy = false;
  const intervalMs = Number(live.dataset.intervalMs || 2000);

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const answer = await fetch(live.dataset.liveUrl, {
        credentials: 'same-origin',
        headers: { accept: 'application/json' },
      });
      if (!answer.ok) throw new Error(String(answer.status));
      const { mark: latest } = await answer.json();
      if (latest !== mark) {
        const fresh = await fetch(live.dataset.rowsUrl, { credentials: 'same-origin' });
        if (!fresh.ok) throw new Error(String(fresh.status));
        rows.innerHTML = await fresh.text();
        mark = Number(fresh.headers.get('x-change-mark') || latest);
        live.dataset.mark = String(mark);
        text.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
      }
      live.classList.remove('stale');
    } catch {
      live.classList.add('stale');
      text.textContent = 'Live updates paused (connection)';
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, intervalMs);
})();
