// A minimal event emitter for IRTS and IRTSRoom: on/off/emit. A handler
// that throws does not stop the others, nor the SDK (the error is reported
// asynchronously, as an uncaught error of the app, not of the SDK).

export class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(type, handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    let list = this._handlers.get(type);
    if (!list) this._handlers.set(type, (list = []));
    list.push(handler);
  }

  off(type, handler) {
    const list = this._handlers.get(type);
    if (!list) return;
    if (handler === undefined) {
      this._handlers.delete(type);
      return;
    }
    const i = list.indexOf(handler);
    if (i >= 0) list.splice(i, 1);
  }

  removeAllListeners() {
    this._handlers.clear();
  }

  emit(type, ...args) {
    const list = this._handlers.get(type);
    if (!list) return;
    for (const h of [...list]) {
      try {
        h(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}
