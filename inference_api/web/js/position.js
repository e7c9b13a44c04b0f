// Where the phone is when a photo is taken. Browsers often strip a camera photo's EXIF GPS, so
// the page sends this beside the photo; the server uses it only when the photo has no GPS of
// its own, and marks it as the device's with the accuracy the browser reported.

const WAIT_MS = 8000;
const MAX_AGE_MS = 30_000;
const JUST_TAKEN_MS = 10 * 60_000;

/**
 * The browser's position now, {lat, lon, accuracy_m, at}, or null (no permission, no fix in
 * WAIT_MS, or no geolocation: an http:// page on a LAN address is not a secure context).
 */
export function here() {
  if (!navigator.geolocation) return Promise.resolve(null);
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (fix) => resolve({ lat: fix.coords.latitude, lon: fix.coords.longitude, accuracy_m: Math.round(fix.coords.accuracy * 10) / 10, at: new Date(fix.timestamp).toISOString() }),
      () => resolve(null),
      { enableHighAccuracy: true, timeout: WAIT_MS, maximumAge: MAX_AGE_MS },
    );
  });
}

/**
 * Whether where the phone is now says where `file` was taken: a photo from the camera, or one
 * picked from the gallery that was made minutes ago. An older gallery photo was taken somewhere
 * else, so it gets no device position (a wrong place on the map is worse than none).
 */
export function takenHere(file, fromCamera) {
  return fromCamera || Date.now() - file.lastModified < JUST_TAKEN_MS;
}
