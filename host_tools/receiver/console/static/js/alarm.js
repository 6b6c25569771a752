// The audible alarm (Web Audio) and the flashing title. They run while any alert
// is unacknowledged and stop when someone acknowledges; duress sounds different.
const BASE_TITLE = "Sotto console";

export class Alarm {
  constructor() {
    this.ctx = null; this.timer = null; this.flash = null;
    this.active = false; this.duress = false; this.beeps = 0; this.text = "";
  }
  // Browsers allow sound only after a user gesture: the login click calls this.
  unlock() {
    try {
      this.ctx = this.ctx || new (window.AudioContext || window.webkitAudioContext)();
      if (this.ctx.state === "suspended") this.ctx.resume();
    } catch (e) { this.ctx = null; }
  }
  get audioState() { return this.ctx ? this.ctx.state : "none"; }
  beep(freq, ms) {
    if (!this.ctx) return;
    const t = this.ctx.currentTime, osc = this.ctx.createOscillator(), gain = this.ctx.createGain();
    osc.type = "square"; osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t); gain.gain.exponentialRampToValueAtTime(0.25, t + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + ms / 1000);
    osc.connect(gain).connect(this.ctx.destination); osc.start(t); osc.stop(t + ms / 1000 + 0.02);
    this.beeps += 1;
  }
  // count: unacknowledged alerts; duress: one of them is duress; text: for the title
  set(count, duress, text) {
    const should = count > 0;
    this.text = text;
    if (should && (!this.active || duress !== this.duress)) this.start(duress);
    else if (!should && this.active) this.stop();
  }
  start(duress) {
    this.stop();
    this.active = true; this.duress = duress;
    const ring = () => duress ? (this.beep(1320, 120), setTimeout(() => this.beep(1320, 120), 180))
                              : this.beep(880, 250);
    ring();
    this.timer = setInterval(ring, duress ? 600 : 1200);
    let on = false;
    this.flash = setInterval(() => {
      on = !on;
      document.title = on ? `⚠ ${this.text || "ALERT"} ⚠` : BASE_TITLE;
    }, 500);
  }
  stop() {
    clearInterval(this.timer); clearInterval(this.flash);
    this.timer = this.flash = null; this.active = false; this.duress = false;
    document.title = BASE_TITLE;
  }
}
